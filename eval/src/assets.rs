//! TODO(issue 2): assets
