//! `weft`: the command line for operators.

fn main() {}
