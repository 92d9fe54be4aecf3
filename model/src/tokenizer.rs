//! TODO(issue 3): tokenizer
