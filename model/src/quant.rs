//! TODO(issue 3): quant
