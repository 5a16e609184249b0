//! Health checks of nginx and friends.

pub mod url;
