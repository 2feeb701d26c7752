//! Landlock (placeholder).
