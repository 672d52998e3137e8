//! Frame builders for test scenarios: the shared ones of the library
//! (`vswitch::testutil::frames`, behind its `test-util` feature), re-exported under the
//! name the scenarios use.

pub use vswitch::testutil::frames::*;
