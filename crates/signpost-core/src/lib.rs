//! signpost-core
