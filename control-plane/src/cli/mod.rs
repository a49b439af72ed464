//! The `weft` command line.
