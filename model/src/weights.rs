//! TODO(issue 3): weights
