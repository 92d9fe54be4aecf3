//! TODO(issue 3): loader
