//! signpost-api
