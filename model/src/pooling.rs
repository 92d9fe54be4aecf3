//! TODO(issue 3): pooling
