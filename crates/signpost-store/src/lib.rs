//! signpost-store
