//! What several fuzz targets check the same way.

pub mod h1;
