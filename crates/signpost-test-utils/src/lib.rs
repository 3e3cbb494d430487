//! signpost-test-utils
