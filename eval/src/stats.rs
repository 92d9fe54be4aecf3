//! TODO(issue 2): stats
