//! learnrec-fusion: the paper's ranking-side set-up.
//!
//! A reference ranking model (ID embeddings + categorical features → MLP/DCN → CVR logit), the
//! LEARN auxiliary network (frozen LEARN user/item embeddings → MLP with its own CVR head), and a
//! plug-in API an existing Burn ranking model links into its training loop (issue 5).
