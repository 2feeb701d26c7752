//! Sandbox (placeholder).
pub mod landlock;
pub mod seccomp;
