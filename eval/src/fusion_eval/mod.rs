//! fusion-eval: Tables 6 and 7 from a predictions file (issue 6).
