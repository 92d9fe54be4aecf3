//! Catalog and interaction readers: CSV/TSV (header), JSON Lines, RecBole atomic files.
