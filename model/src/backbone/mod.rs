//! Frozen LLM / BERT backbones: base models returning last hidden states (issue 3).
