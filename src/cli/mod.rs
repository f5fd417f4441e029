pub mod edit; pub mod lio; pub mod render;
