//! Support for tests, benchmarks and fuzz targets; compiled only for the crate's own unit
//! tests or with the `test-util` cargo feature (`vswitch = { ..., features = ["test-util"] }`
//! in a dependent's `[dev-dependencies]`). Not part of the datapath: nothing here is used by
//! the switch itself.

pub mod frames;
