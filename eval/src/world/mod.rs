//! The synthetic e-commerce world and its oracle (issue 2).
