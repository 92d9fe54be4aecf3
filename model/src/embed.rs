//! TODO(issue 3): embed
