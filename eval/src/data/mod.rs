//! Shared data types: the item catalog, the interaction log and dense id maps.
//!
//! Readers for CSV/TSV (with header), JSON Lines and RecBole atomic files live in [`reader`].
//! Every id seen by the project is mapped once to a dense `u32`; an id that is not in a map is
//! explicit ([`IdMap::get`] returns `None`), never silently created.

pub mod reader;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The paper's six item text fields (title, category, brand, price, keywords, attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Title,
    Category,
    Brand,
    Price,
    Keywords,
    Attributes,
}

impl Field {
    /// All six fields in the paper's order.
    pub const ALL: [Field; 6] = [
        Field::Title,
        Field::Category,
        Field::Brand,
        Field::Price,
        Field::Keywords,
        Field::Attributes,
    ];
    /// The lowercase name used in templates (`{title}`) and column maps.
    pub fn name(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Category => "category",
            Field::Brand => "brand",
            Field::Price => "price",
            Field::Keywords => "keywords",
            Field::Attributes => "attributes",
        }
    }
    /// The label the paper's default text uses ("Title", …, "Attribute").
    pub fn label(self) -> &'static str {
        match self {
            Field::Title => "Title",
            Field::Category => "Category",
            Field::Brand => "Brand",
            Field::Price => "Price",
            Field::Keywords => "Keywords",
            Field::Attributes => "Attribute",
        }
    }
}

/// One catalog item: its external id and its text fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// External id as found in the catalog file.
    pub id: String,
    pub title: String,
    pub category: String,
    pub brand: String,
    /// Price in the catalog's currency (yuan in the world), if known.
    pub price: Option<f64>,
    pub keywords: String,
    pub attributes: String,
    /// Any other column, by name (e.g. MovieLens `release_year`).
    pub extra: BTreeMap<String, String>,
    /// Time (seconds) the item became available; `None` = always.
    pub available_from: Option<i64>,
}

impl Item {
    /// The text of a field by its template name (`title`, …, or any `extra` column).
    pub fn field(&self, name: &str) -> Option<String> {
        match name {
            "id" => Some(self.id.clone()),
            "title" => Some(self.title.clone()),
            "category" => Some(self.category.clone()),
            "brand" => Some(self.brand.clone()),
            "price" => self.price.map(format_price),
            "keywords" => Some(self.keywords.clone()),
            "attributes" => Some(self.attributes.clone()),
            other => self.extra.get(other).cloned(),
        }
    }
}

/// Prices print without trailing zeros beyond one decimal ("9.9", "39.0").
pub fn format_price(p: f64) -> String {
    if (p * 10.0).fract().abs() < 1e-9 { format!("{p:.1}") } else { format!("{p:.2}") }
}

/// A dense id map: external string id ⇄ `u32` index, built once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdMap {
    names: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl IdMap {
    pub fn new() -> Self {
        Self::default()
    }
    /// Index of `name`, inserting it if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }
    /// Index of `name`, or `None` if unseen.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }
    /// External id of index `i`.
    pub fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// Rebuilds the lookup index (after deserialisation).
    pub fn rebuild_index(&mut self) {
        self.index = self.names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
    }
    /// Builds a map from names in order (duplicates keep their first index).
    pub fn from_names<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Self {
        let mut m = IdMap::new();
        for n in names {
            m.intern(n.as_ref());
        }
        m
    }
}

/// An item catalog; item `i` of [`Catalog::items`] has dense id `i`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub items: Vec<Item>,
    pub ids: IdMap,
}

impl Catalog {
    /// Builds a catalog; duplicate ids are an error reported by the readers, here the first wins.
    pub fn from_items(items: Vec<Item>) -> Self {
        let ids = IdMap::from_names(items.iter().map(|i| i.id.as_str()));
        Catalog { items, ids }
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.ids.get(id).map(|i| &self.items[i as usize])
    }
}

/// What a user did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The item was shown.
    Impression,
    /// The item was clicked.
    Click,
    /// The item was bought (the paper's conversion).
    Conversion,
    /// An explicit rating (MovieLens); the value is in [`Interaction::value`].
    Rating,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Impression => "impression",
            Action::Click => "click",
            Action::Conversion => "conversion",
            Action::Rating => "rating",
        }
    }
    pub fn parse(s: &str) -> Option<Action> {
        match s.trim().to_ascii_lowercase().as_str() {
            "impression" | "imp" | "view" | "expose" => Some(Action::Impression),
            "click" | "clk" => Some(Action::Click),
            "conversion" | "purchase" | "buy" | "order" | "conv" => Some(Action::Conversion),
            "rating" | "rate" => Some(Action::Rating),
            _ => None,
        }
    }
}

/// One logged interaction with dense user and item ids.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub user: u32,
    pub item: u32,
    /// Seconds since the epoch (or any monotone clock).
    pub ts: i64,
    pub action: Action,
    /// Rating value for [`Action::Rating`], else 1.
    pub value: f32,
    /// Revenue of a conversion (price × quantity), if logged.
    pub revenue: Option<f32>,
}

/// How a log's actions map onto the paper's click / conversion labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelRule {
    /// A rating at or above this counts as a conversion (MovieLens proxy: 4).
    pub convert_min_rating: f32,
}

impl Default for LabelRule {
    fn default() -> Self {
        LabelRule { convert_min_rating: 4.0 }
    }
}

impl LabelRule {
    /// Whether the interaction is a click (any rating counts as a click: "rated = watched").
    pub fn is_click(&self, x: &Interaction) -> bool {
        matches!(x.action, Action::Click | Action::Conversion | Action::Rating)
    }
    /// Whether the interaction is a conversion.
    pub fn is_conversion(&self, x: &Interaction) -> bool {
        match x.action {
            Action::Conversion => true,
            Action::Rating => x.value >= self.convert_min_rating,
            _ => false,
        }
    }
}

/// An interaction log: rows sorted by (ts, user) once loaded, with the id maps used.
#[derive(Debug, Clone, Default)]
pub struct InteractionLog {
    pub users: IdMap,
    /// Item ids; when loaded against a catalog this is the catalog's map.
    pub items: IdMap,
    pub rows: Vec<Interaction>,
}

impl InteractionLog {
    /// Sorts rows by time, then user, then item (stable, deterministic).
    pub fn sort(&mut self) {
        self.rows.sort_by_key(|r| (r.ts, r.user, r.item, r.action));
    }
    /// Earliest and latest timestamp, if any rows.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let min = self.rows.iter().map(|r| r.ts).min()?;
        let max = self.rows.iter().map(|r| r.ts).max()?;
        Some((min, max))
    }
}
