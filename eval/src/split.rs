//! TODO(issue 2): split
