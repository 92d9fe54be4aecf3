//! AUC, per-user AUC, UAUC and WUAUC (issue 6).
