//! Which backends and cached values a reload keeps.
