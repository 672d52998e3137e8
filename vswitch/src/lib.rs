//! vswitch datapath library.
#![warn(missing_docs)]
