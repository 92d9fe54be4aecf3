//! Catalog and interaction readers: CSV/TSV (header), JSON Lines, RecBole atomic files.
//!
//! The format follows the file extension (`.csv`, `.tsv`/`.tab`, `.jsonl`/`.ndjson`/`.json`,
//! RecBole `.item`/`.inter`/`.user`/`.atomic`) unless [`CatalogOptions::format`] /
//! [`InteractionOptions::format`] override it. Columns are found by a column map: explicit
//! overrides first, then a list of obvious names per field (see [`CatalogColumn::aliases`] and
//! [`InteractionColumn::aliases`]), compared case-insensitively. RecBole headers are
//! `name:type`; the `:type` suffix is dropped before matching.
//!
//! Every problem with the input is an [`Error::Parse`] naming `file:line` and the field, or an
//! [`Error::File`] for file-level problems (empty file, missing column, unknown format). The
//! delimited readers use `csv` byte records and decode only the fields they need, so
//! MovieLens-1M (1,000,209 ratings) loads in about a second in an optimised build.

use super::{Action, Catalog, IdMap, Interaction, InteractionLog, Item};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A tabular file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated, header row, `"` quoting.
    Csv,
    /// Tab-separated, header row, no quoting (IANA TSV).
    Tsv,
    /// One JSON object per line; the columns are the union of all keys.
    JsonLines,
    /// RecBole atomic file: tab-separated, no quoting, header `name:type`.
    Atomic,
}

impl Format {
    /// All formats.
    pub const ALL: [Format; 4] = [Format::Csv, Format::Tsv, Format::JsonLines, Format::Atomic];

    /// The format of `path` by its extension, if known.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            "item" | "inter" | "user" | "atomic" => Some(Format::Atomic),
            _ => None,
        }
    }

    /// Parses a format name (`csv`, `tsv`, `jsonl`, `atomic`/`recbole`).
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            "jsonl" | "json-lines" | "jsonlines" | "ndjson" | "json" => Some(Format::JsonLines),
            "atomic" | "recbole" => Some(Format::Atomic),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::JsonLines => "jsonl",
            Format::Atomic => "atomic",
        }
    }

    /// The override if given, else the format of `path`'s extension, else an error.
    pub fn resolve(path: &Path, over: Option<Format>) -> Result<Format> {
        over.or_else(|| Format::from_path(path)).ok_or_else(|| {
            Error::file(
                path,
                "unknown file format (extension is not csv, tsv, jsonl, item, inter or user); \
                 pass the format explicitly",
            )
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A named column of a file, mapped from one or more source column names.
pub trait Column: Copy + Ord + std::fmt::Debug + 'static {
    /// All columns of this kind.
    const ALL: &'static [Self];
    /// Canonical name (as used in `--columns title=movie_title`).
    fn name(self) -> &'static str;
    /// Source column names tried in order when no override is given.
    fn aliases(self) -> &'static [&'static str];
    /// Parses a canonical name.
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        Self::ALL.iter().copied().find(|c| c.name() == s)
    }
}

/// The catalog fields a column can map onto: the id, the paper's six text fields, availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogColumn {
    Id,
    Title,
    Category,
    Brand,
    Price,
    Keywords,
    Attributes,
    AvailableFrom,
}

impl Column for CatalogColumn {
    const ALL: &'static [Self] = &[
        CatalogColumn::Id,
        CatalogColumn::Title,
        CatalogColumn::Category,
        CatalogColumn::Brand,
        CatalogColumn::Price,
        CatalogColumn::Keywords,
        CatalogColumn::Attributes,
        CatalogColumn::AvailableFrom,
    ];
    fn name(self) -> &'static str {
        match self {
            CatalogColumn::Id => "id",
            CatalogColumn::Title => "title",
            CatalogColumn::Category => "category",
            CatalogColumn::Brand => "brand",
            CatalogColumn::Price => "price",
            CatalogColumn::Keywords => "keywords",
            CatalogColumn::Attributes => "attributes",
            CatalogColumn::AvailableFrom => "available_from",
        }
    }
    /// MovieLens: `item_id` → id, `movie_title` → title, `genre` → category; `release_year` and
    /// any other unmapped column land in [`Item::extra`].
    fn aliases(self) -> &'static [&'static str] {
        match self {
            CatalogColumn::Id => &["item_id", "id", "itemid", "item", "movie_id", "product_id", "sku"],
            CatalogColumn::Title => &["title", "movie_title", "item_name", "product_name", "name"],
            CatalogColumn::Category => &["category", "genre", "genres", "cate", "category_name"],
            CatalogColumn::Brand => &["brand", "brand_name"],
            CatalogColumn::Price => &["price"],
            CatalogColumn::Keywords => &["keywords", "keyword", "tags"],
            CatalogColumn::Attributes => &["attributes", "attribute", "attrs"],
            CatalogColumn::AvailableFrom => &["available_from"],
        }
    }
}

/// The interaction fields a column can map onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractionColumn {
    User,
    Item,
    Timestamp,
    Action,
    Value,
    Revenue,
}

impl Column for InteractionColumn {
    const ALL: &'static [Self] = &[
        InteractionColumn::User,
        InteractionColumn::Item,
        InteractionColumn::Timestamp,
        InteractionColumn::Action,
        InteractionColumn::Value,
        InteractionColumn::Revenue,
    ];
    fn name(self) -> &'static str {
        match self {
            InteractionColumn::User => "user",
            InteractionColumn::Item => "item",
            InteractionColumn::Timestamp => "timestamp",
            InteractionColumn::Action => "action",
            InteractionColumn::Value => "value",
            InteractionColumn::Revenue => "revenue",
        }
    }
    fn aliases(self) -> &'static [&'static str] {
        match self {
            InteractionColumn::User => &["user_id", "user", "uid", "userid", "customer_id"],
            InteractionColumn::Item => &["item_id", "item", "iid", "itemid", "movie_id", "product_id"],
            InteractionColumn::Timestamp => &["timestamp", "ts", "time", "event_time"],
            InteractionColumn::Action => &["action", "event", "event_type", "behavior", "behaviour"],
            InteractionColumn::Value => &["value", "rating", "score"],
            InteractionColumn::Revenue => &["revenue", "amount", "gmv"],
        }
    }
}

/// Parses a column map `field=column,field=column` (e.g. `title=name,category=genre`).
pub fn parse_column_map<C: Column>(spec: &str) -> Result<BTreeMap<C, String>> {
    let mut map = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("column map entry `{part}` is not FIELD=COLUMN")))?;
        let col = C::parse(k).ok_or_else(|| {
            let names: Vec<_> = C::ALL.iter().map(|c| c.name()).collect();
            Error::Invalid(format!("unknown field `{}` in column map (known: {})", k.trim(), names.join(", ")))
        })?;
        map.insert(col, v.trim().to_owned());
    }
    Ok(map)
}

/// Options of [`read_catalog`].
#[derive(Debug, Clone, Default)]
pub struct CatalogOptions {
    /// Format override; `None` = by extension.
    pub format: Option<Format>,
    /// Column overrides (field → source column name); unlisted fields use the aliases.
    pub columns: BTreeMap<CatalogColumn, String>,
}

/// What to do with an interaction whose item is not in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownItems {
    /// Stop with an error naming `file:line` and the item field.
    #[default]
    Error,
    /// Skip the row and count it in [`ReadReport::skipped_unknown_items`].
    Skip,
}

/// Options of [`read_interactions`].
#[derive(Debug, Clone)]
pub struct InteractionOptions {
    /// Format override; `None` = by extension.
    pub format: Option<Format>,
    /// Column overrides (field → source column name); unlisted fields use the aliases.
    pub columns: BTreeMap<InteractionColumn, String>,
    /// Policy for item ids missing from the catalog (only when a catalog is given).
    pub unknown_items: UnknownItems,
    /// Action of every row when the file has neither an action nor a value/rating column
    /// (an implicit-feedback log). With a value column and no action column the action is
    /// [`Action::Rating`].
    pub default_action: Action,
}

impl Default for InteractionOptions {
    fn default() -> Self {
        InteractionOptions {
            format: None,
            columns: BTreeMap::new(),
            unknown_items: UnknownItems::Error,
            default_action: Action::Click,
        }
    }
}

/// What [`read_interactions_report`] did besides returning the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReadReport {
    /// Data rows read (excluding the header).
    pub rows_read: u64,
    /// Rows skipped because their item is not in the catalog ([`UnknownItems::Skip`]).
    pub skipped_unknown_items: u64,
    /// `(line, item id)` of the first skipped row, if any.
    pub first_unknown: Option<(u64, String)>,
}

// ---------------------------------------------------------------------------------------------
// Tables: a header and rows, whatever the format.

/// A column header: its name (type suffix dropped) and, for atomic files, its RecBole type.
#[derive(Debug, Clone)]
struct HeaderCol {
    name: String,
    atomic_type: Option<String>,
}

enum Source {
    Delimited(csv::Reader<File>),
    Json { file: PathBuf },
}

struct Table {
    path: PathBuf,
    header: Vec<HeaderCol>,
    source: Source,
}

/// One row while it is being read.
struct Row<'a> {
    path: &'a Path,
    line: u64,
    header: &'a [HeaderCol],
    data: RowData<'a>,
}

enum RowData<'a> {
    Bytes(&'a csv::ByteRecord),
    Json(&'a [Option<String>]),
}

impl Row<'_> {
    /// Field `col` as text; `None` when absent (JSON key missing or null).
    fn get(&self, col: usize) -> Result<Option<&str>> {
        match &self.data {
            RowData::Bytes(rec) => match rec.get(col) {
                None => Ok(None),
                Some(b) => std::str::from_utf8(b)
                    .map(Some)
                    .map_err(|e| self.err(col, format!("not valid UTF-8 (byte {} of the field)", e.valid_up_to()))),
            },
            RowData::Json(vals) => Ok(vals.get(col).and_then(|v| v.as_deref())),
        }
    }

    /// Field `col`, required non-empty.
    fn required(&self, col: usize) -> Result<&str> {
        match self.get(col)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(self.err(col, "empty value")),
        }
    }

    fn err(&self, col: usize, message: impl Into<String>) -> Error {
        Error::parse(self.path, self.line, self.header[col].name.clone(), message)
    }

    fn f64(&self, col: usize) -> Result<Option<f64>> {
        let Some(s) = self.get(col)?.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            Ok(_) => Err(self.err(col, format!("`{s}` is not a finite number"))),
            Err(_) => Err(self.err(col, format!("cannot parse `{s}` as a number"))),
        }
    }

    /// An integer timestamp; floats (RecBole writes `timestamp:float`) are floored.
    fn ts(&self, col: usize) -> Result<Option<i64>> {
        let Some(s) = self.get(col)?.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if let Ok(v) = s.parse::<i64>() {
            return Ok(Some(v));
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v.abs() < 9.0e18 => Ok(Some(v.floor() as i64)),
            _ => Err(self.err(col, format!("cannot parse `{s}` as a timestamp (integer seconds)"))),
        }
    }
}

impl Table {
    fn open(path: &Path, format: Format) -> Result<Table> {
        match format {
            Format::Csv | Format::Tsv | Format::Atomic => Self::open_delimited(path, format),
            Format::JsonLines => Self::open_json(path),
        }
    }

    fn open_delimited(path: &Path, format: Format) -> Result<Table> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(if format == Format::Csv { b',' } else { b'\t' })
            .quoting(format == Format::Csv)
            .flexible(true)
            .has_headers(true)
            .buffer_capacity(1 << 16)
            .from_reader(file);
        let raw = rdr.byte_headers().map_err(|e| csv_error(path, e))?.clone();
        if raw.is_empty() || (raw.len() == 1 && raw[0].iter().all(u8::is_ascii_whitespace)) {
            return Err(Error::file(path, "empty file (no header line)"));
        }
        let mut header = Vec::with_capacity(raw.len());
        for (i, b) in raw.iter().enumerate() {
            let b = if i == 0 { b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b) } else { b };
            let s = std::str::from_utf8(b)
                .map_err(|_| Error::parse(path, 1, format!("column {}", i + 1), "header is not valid UTF-8"))?
                .trim();
            let (name, atomic_type) = match (format, s.rsplit_once(':')) {
                (Format::Atomic, Some((n, t))) => (n.to_owned(), Some(t.to_owned())),
                _ => (s.to_owned(), None),
            };
            if name.is_empty() {
                return Err(Error::parse(path, 1, format!("column {}", i + 1), "empty column name in the header"));
            }
            header.push(HeaderCol { name, atomic_type });
        }
        check_unique(path, &header)?;
        Ok(Table { path: path.to_owned(), header, source: Source::Delimited(rdr) })
    }

    fn open_json(path: &Path) -> Result<Table> {
        let mut header: Vec<HeaderCol> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut any = false;
        for_each_json_object(path, |_, obj| {
            any = true;
            for k in obj.keys() {
                if !seen.contains_key(k) {
                    seen.insert(k.clone(), header.len());
                    header.push(HeaderCol { name: k.clone(), atomic_type: None });
                }
            }
            Ok(())
        })?;
        if !any {
            return Err(Error::file(path, "empty file (no JSON objects)"));
        }
        Ok(Table { path: path.to_owned(), header, source: Source::Json { file: path.to_owned() } })
    }

    /// Index of the column for `col`: the override if given (must exist), else the first alias.
    fn resolve<C: Column>(&self, col: C, overrides: &BTreeMap<C, String>) -> Result<Option<usize>> {
        let find = |name: &str| self.header.iter().position(|h| h.name.eq_ignore_ascii_case(name));
        if let Some(name) = overrides.get(&col) {
            return match find(name) {
                Some(i) => Ok(Some(i)),
                None => Err(Error::file(
                    &self.path,
                    format!(
                        "missing column `{name}` (mapped to field `{}`); columns are: {}",
                        col.name(),
                        self.column_list()
                    ),
                )),
            };
        }
        Ok(col.aliases().iter().find_map(|a| find(a)))
    }

    fn required<C: Column>(&self, col: C, overrides: &BTreeMap<C, String>) -> Result<usize> {
        self.resolve(col, overrides)?.ok_or_else(|| {
            Error::file(
                &self.path,
                format!(
                    "missing column for field `{}` (looked for {}); columns are: {}",
                    col.name(),
                    col.aliases().join(", "),
                    self.column_list()
                ),
            )
        })
    }

    fn column_list(&self) -> String {
        self.header.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// Calls `f` on every data row, in file order. Returns the number of rows.
    fn for_each_row(self, mut f: impl FnMut(&Row) -> Result<()>) -> Result<u64> {
        let Table { path, header, source } = self;
        let mut n = 0u64;
        match source {
            Source::Delimited(mut rdr) => {
                let mut rec = csv::ByteRecord::new();
                while rdr.read_byte_record(&mut rec).map_err(|e| csv_error(&path, e))? {
                    let line = rec.position().map(|p| p.line()).unwrap_or(0);
                    if rec.len() != header.len() {
                        // A blank line inside a quoted file or a truncated/overlong row.
                        let field = header
                            .get(rec.len())
                            .map(|h| h.name.clone())
                            .unwrap_or_else(|| format!("extra field {}", header.len() + 1));
                        return Err(Error::parse(
                            &path,
                            line,
                            field,
                            format!("ragged row: expected {} fields, found {}", header.len(), rec.len()),
                        ));
                    }
                    n += 1;
                    f(&Row { path: &path, line, header: &header, data: RowData::Bytes(&rec) })?;
                }
            }
            Source::Json { file } => {
                let index: HashMap<&str, usize> =
                    header.iter().enumerate().map(|(i, h)| (h.name.as_str(), i)).collect();
                let mut vals: Vec<Option<String>> = vec![None; header.len()];
                for_each_json_object(&file, |line, obj| {
                    vals.iter_mut().for_each(|v| *v = None);
                    for (k, v) in obj {
                        if let Some(&i) = index.get(k.as_str()) {
                            vals[i] = json_text(v);
                        }
                    }
                    n += 1;
                    f(&Row { path: &path, line, header: &header, data: RowData::Json(&vals) })
                })?;
            }
        }
        if n == 0 {
            return Err(Error::file(&path, "no data rows after the header"));
        }
        Ok(n)
    }
}

fn check_unique(path: &Path, header: &[HeaderCol]) -> Result<()> {
    let mut seen = HashMap::new();
    for h in header {
        if seen.insert(h.name.to_ascii_lowercase(), ()).is_some() {
            return Err(Error::parse(path, 1, h.name.clone(), "duplicate column name in the header"));
        }
    }
    Ok(())
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => {
            let msg = format!("{other:?}");
            match line {
                Some(l) => Error::parse(path, l, "(row)", msg),
                None => Error::file(path, msg),
            }
        }
    }
}

/// Reads a JSON Lines file, calling `f(line, object)` on every non-blank line.
fn for_each_json_object(
    path: &Path,
    mut f: impl FnMut(u64, &serde_json::Map<String, serde_json::Value>) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rdr = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        if rdr.read_until(b'\n', &mut buf).map_err(|e| Error::io(path, e))? == 0 {
            return Ok(());
        }
        line += 1;
        let text = std::str::from_utf8(&buf)
            .map_err(|e| Error::parse(path, line, "(line)", format!("not valid UTF-8 (byte {})", e.valid_up_to())))?;
        let text = if line == 1 { text.trim_start_matches('\u{feff}') } else { text };
        if text.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::parse(path, line, "(json)", e.to_string()))?;
        match v {
            serde_json::Value::Object(obj) => f(line, &obj)?,
            _ => return Err(Error::parse(path, line, "(json)", "expected a JSON object")),
        }
    }
}

/// Text of a JSON value: strings as is, numbers and booleans printed, arrays joined by ", ",
/// null = absent, objects as compact JSON.
fn json_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) => Some(a.iter().filter_map(json_text).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => Some(v.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Catalog.

/// Reads an item catalog. Item `i` of the result has dense id `i` (file order).
///
/// Errors: unknown format, missing id column (or a mapped column that is absent), empty file,
/// no rows, empty id, duplicate id (naming both lines), unparsable price/availability, ragged
/// row, non-UTF-8 text.
///
/// Lists: in atomic files a `token_seq` column, and a `genre`/`genres` column (RecBole's
/// MovieLens writes genres space-separated in a `token` column), become ", "-separated text.
pub fn read_catalog(path: impl AsRef<Path>, opts: &CatalogOptions) -> Result<Catalog> {
    let path = path.as_ref();
    let format = Format::resolve(path, opts.format)?;
    let table = Table::open(path, format)?;
    let ov = &opts.columns;
    let id = table.required(CatalogColumn::Id, ov)?;
    let title = table.resolve(CatalogColumn::Title, ov)?;
    let category = table.resolve(CatalogColumn::Category, ov)?;
    let brand = table.resolve(CatalogColumn::Brand, ov)?;
    let price = table.resolve(CatalogColumn::Price, ov)?;
    let keywords = table.resolve(CatalogColumn::Keywords, ov)?;
    let attributes = table.resolve(CatalogColumn::Attributes, ov)?;
    let available = table.resolve(CatalogColumn::AvailableFrom, ov)?;
    let mapped = [Some(id), title, category, brand, price, keywords, attributes, available];
    let extra: Vec<usize> = (0..table.header.len()).filter(|i| !mapped.contains(&Some(*i))).collect();
    let is_list: Vec<bool> = table
        .header
        .iter()
        .map(|h| match &h.atomic_type {
            Some(t) => t == "token_seq" || matches!(h.name.to_ascii_lowercase().as_str(), "genre" | "genres"),
            None => false,
        })
        .collect();

    let mut items: Vec<Item> = Vec::new();
    let mut ids = IdMap::new();
    let mut first_line: Vec<u64> = Vec::new();
    table.for_each_row(|row| {
        let text = |c: Option<usize>| -> Result<String> {
            Ok(match c {
                Some(c) => match row.get(c)? {
                    Some(s) if is_list[c] => s.split_whitespace().collect::<Vec<_>>().join(", "),
                    Some(s) => s.trim().to_owned(),
                    None => String::new(),
                },
                None => String::new(),
            })
        };
        let item_id = row.required(id)?.trim();
        if let Some(prev) = ids.get(item_id) {
            return Err(
                row.err(id, format!("duplicate item id `{item_id}` (first at line {})", first_line[prev as usize]))
            );
        }
        ids.intern(item_id);
        first_line.push(row.line);
        let mut item = Item {
            id: item_id.to_owned(),
            title: text(title)?,
            category: text(category)?,
            brand: text(brand)?,
            price: match price {
                Some(c) => row.f64(c)?,
                None => None,
            },
            keywords: text(keywords)?,
            attributes: text(attributes)?,
            extra: BTreeMap::new(),
            available_from: match available {
                Some(c) => row.ts(c)?,
                None => None,
            },
        };
        for &c in &extra {
            if let Some(v) = row.get(c)? {
                let v =
                    if is_list[c] { v.split_whitespace().collect::<Vec<_>>().join(", ") } else { v.trim().to_owned() };
                item.extra.insert(row.header[c].name.clone(), v);
            }
        }
        items.push(item);
        Ok(())
    })?;
    Ok(Catalog { items, ids })
}

// ---------------------------------------------------------------------------------------------
// Interactions.

/// Reads an interaction log; see [`read_interactions_report`].
pub fn read_interactions(
    path: impl AsRef<Path>,
    catalog: Option<&Catalog>,
    opts: &InteractionOptions,
) -> Result<InteractionLog> {
    read_interactions_report(path, catalog, opts).map(|(log, _)| log)
}

/// Reads an interaction log, sorted by (time, user, item, action), and says what was skipped.
///
/// Users get dense ids in order of first appearance. With a catalog, item ids are the catalog's
/// (the log's [`InteractionLog::items`] is the catalog's map) and an unknown item is an error
/// naming `file:line` and the item field, or is skipped and counted ([`UnknownItems::Skip`]);
/// without one, items get dense ids in order of first appearance.
///
/// Columns: user, item and timestamp are required. The action column holds
/// impression/click/conversion/rating (and the synonyms of [`Action::parse`]); without it, a
/// file with a value column (e.g. MovieLens `rating`) is a log of [`Action::Rating`]s, else every
/// row is [`InteractionOptions::default_action`]. `value` defaults to 1 (ratings require it);
/// `revenue` is optional and may be empty.
pub fn read_interactions_report(
    path: impl AsRef<Path>,
    catalog: Option<&Catalog>,
    opts: &InteractionOptions,
) -> Result<(InteractionLog, ReadReport)> {
    let path = path.as_ref();
    let format = Format::resolve(path, opts.format)?;
    let table = Table::open(path, format)?;
    let ov = &opts.columns;
    let user_c = table.required(InteractionColumn::User, ov)?;
    let item_c = table.required(InteractionColumn::Item, ov)?;
    let ts_c = table.required(InteractionColumn::Timestamp, ov)?;
    let action_c = table.resolve(InteractionColumn::Action, ov)?;
    let value_c = table.resolve(InteractionColumn::Value, ov)?;
    let revenue_c = table.resolve(InteractionColumn::Revenue, ov)?;
    let fixed_action = match (action_c, value_c) {
        (Some(_), _) => None,
        (None, Some(_)) => Some(Action::Rating),
        (None, None) => Some(opts.default_action),
    };

    let mut log = InteractionLog {
        users: IdMap::new(),
        items: catalog.map(|c| c.ids.clone()).unwrap_or_default(),
        rows: Vec::new(),
    };
    let mut report = ReadReport::default();
    table.for_each_row(|row| {
        report.rows_read += 1;
        let user_id = row.required(user_c)?.trim();
        let item_id = row.required(item_c)?.trim();
        let item = match catalog {
            Some(_) => match log.items.get(item_id) {
                Some(i) => i,
                None => match opts.unknown_items {
                    UnknownItems::Error => {
                        return Err(row.err(item_c, format!("unknown item id `{item_id}` (not in the catalog)")));
                    }
                    UnknownItems::Skip => {
                        report.skipped_unknown_items += 1;
                        if report.first_unknown.is_none() {
                            report.first_unknown = Some((row.line, item_id.to_owned()));
                        }
                        return Ok(());
                    }
                },
            },
            None => log.items.intern(item_id),
        };
        let ts = row.ts(ts_c)?.ok_or_else(|| row.err(ts_c, "empty value"))?;
        let action = match (fixed_action, action_c) {
            (Some(a), _) => a,
            (None, Some(c)) => {
                let s = row.required(c)?;
                parse_action(s).ok_or_else(|| {
                    row.err(c, format!("unknown action `{s}` (expected impression, click, conversion or rating)"))
                })?
            }
            (None, None) => opts.default_action,
        };
        let value = match value_c {
            Some(c) => row.f64(c)?,
            None => None,
        };
        let value = match (action, value) {
            (_, Some(v)) => v as f32,
            (Action::Rating, None) => {
                let field = value_c.map_or_else(|| "value".to_owned(), |c| row.header[c].name.clone());
                return Err(Error::parse(row.path, row.line, field, "a rating needs a value"));
            }
            (_, None) => 1.0,
        };
        let revenue = match revenue_c {
            Some(c) => row.f64(c)?.map(|r| r as f32),
            None => None,
        };
        let user = log.users.intern(user_id);
        log.rows.push(Interaction { user, item, ts, action, value, revenue });
        Ok(())
    })?;
    if log.rows.is_empty() {
        return Err(Error::file(path, "no interactions left after skipping unknown items"));
    }
    log.sort();
    Ok((log, report))
}

fn parse_action(s: &str) -> Option<Action> {
    match s {
        "impression" => Some(Action::Impression),
        "click" => Some(Action::Click),
        "conversion" => Some(Action::Conversion),
        "rating" => Some(Action::Rating),
        other => Action::parse(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Whole datasets.

/// A catalog and its interaction log.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub catalog: Catalog,
    pub log: InteractionLog,
}

/// Loads a dataset directory: a world directory (`catalog.csv` + `interactions.csv`) or a
/// RecBole directory with exactly one `*.item` and one `*.inter` file (MovieLens-1M as fetched:
/// `ml-1m.item`, `ml-1m.inter`). Unknown items in the log are an error.
pub fn read_dataset_dir(dir: impl AsRef<Path>) -> Result<Dataset> {
    let dir = dir.as_ref();
    let (cat, inter) = dataset_files(dir)?;
    let catalog = read_catalog(&cat, &CatalogOptions::default())?;
    let log = read_interactions(&inter, Some(&catalog), &InteractionOptions::default())?;
    Ok(Dataset { catalog, log })
}

/// The catalog and interaction files of a dataset directory (see [`read_dataset_dir`]).
pub fn dataset_files(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let world = (dir.join("catalog.csv"), dir.join("interactions.csv"));
    if world.0.is_file() && world.1.is_file() {
        return Ok(world);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut items = Vec::new();
    let mut inters = Vec::new();
    for e in entries {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        match p.extension().and_then(|x| x.to_str()) {
            Some("item") => items.push(p),
            Some("inter") => inters.push(p),
            _ => {}
        }
    }
    match (items.as_slice(), inters.as_slice()) {
        ([a], [b]) => Ok((a.clone(), b.clone())),
        _ => Err(Error::file(
            dir,
            "not a dataset directory: expected catalog.csv + interactions.csv, or one *.item and one *.inter file",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::from_path(Path::new("a/ml-1m.inter")), Some(Format::Atomic));
        assert_eq!(Format::from_path(Path::new("x.CSV")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("x.jsonl")), Some(Format::JsonLines));
        assert_eq!(Format::from_path(Path::new("x.parquet")), None);
        for f in Format::ALL {
            assert_eq!(Format::parse(f.name()), Some(f));
        }
    }

    #[test]
    fn column_map_spec() {
        let m: BTreeMap<CatalogColumn, String> = parse_column_map("title=name, category = genre").unwrap();
        assert_eq!(m[&CatalogColumn::Title], "name");
        assert_eq!(m[&CatalogColumn::Category], "genre");
        let e = parse_column_map::<CatalogColumn>("colour=x").unwrap_err().to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");
        assert!(parse_column_map::<InteractionColumn>("user").is_err());
    }

    #[test]
    fn json_values_as_text() {
        let v: serde_json::Value = serde_json::json!(["a", 1, null]);
        assert_eq!(json_text(&v).as_deref(), Some("a, 1"));
        assert_eq!(json_text(&serde_json::Value::Null), None);
    }
}
