//! The A/B traffic-split simulation engine (issue 7).
