//! TODO(issue 3): text
