//! LEARN towers (PCH), dense all-action loss, training, retrieval metrics (issue 4).
