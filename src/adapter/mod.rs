pub mod linear;
pub mod scaling;
