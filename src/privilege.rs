//! Privilege drop (placeholder).
