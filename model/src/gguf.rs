//! TODO(issue 3): gguf
