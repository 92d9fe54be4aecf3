//! The world's fixed product taxonomy: 10 categories × 5 subcategories, with the vocabulary item
//! texts are written from (nouns, modifiers, materials, brands by price tier, price ranges in
//! yuan), six global styles and the service attributes of Chinese e-commerce listings.
//!
//! The taxonomy is code, not data: world.json stores indices into these tables and its
//! `taxonomy_version`; [`World::load`](super::World::load) refuses a different version.

/// Bumped whenever a table below changes (world.json files record it).
pub const TAXONOMY_VERSION: u32 = 1;

/// A top-level category.
#[derive(Debug)]
pub struct Category {
    /// Display name ("Jewelry & Accessories").
    pub name: &'static str,
    /// Its five subcategories (leaf categories, shown as "Category:" in the text like the paper).
    pub subs: [Subcategory; 5],
    /// Brands by price tier (budget, mid, premium); "-" (no brand) is added by the generator.
    pub brands: [&'static [&'static str]; 3],
    /// Materials / ingredients / specs that may appear in titles and keywords.
    pub materials: &'static [&'static str],
    /// Generic selling-point modifiers ("Versatile", "Five-Petal Flower").
    pub modifiers: &'static [&'static str],
}

/// A subcategory (leaf category).
#[derive(Debug)]
pub struct Subcategory {
    /// Leaf category name ("Earrings").
    pub name: &'static str,
    /// Title nouns; the first is the plain noun used in keywords.
    pub nouns: &'static [&'static str],
    /// Typical price range in yuan (low, high); tiers split it in log space.
    pub price: (f64, f64),
}

/// A style (a latent attribute users have preferences over), with title adjectives.
#[derive(Debug)]
pub struct Style {
    pub name: &'static str,
    /// Adjectives that reveal the style in titles and keywords.
    pub words: &'static [&'static str],
}

/// The six styles (shared by all categories, so a style taste transfers across categories).
pub const STYLES: [Style; 6] = [
    Style { name: "Minimalist", words: &["Minimalist", "Simple", "Clean-Line", "Basic"] },
    Style { name: "Vintage", words: &["Vintage", "Retro", "Classic Retro", "Old-School"] },
    Style { name: "Cute", words: &["Cute", "Cartoon", "Sweet", "Kawaii"] },
    Style { name: "Elegant", words: &["Elegant", "Graceful", "French-Style", "Light Luxury"] },
    Style { name: "Sporty", words: &["Sporty", "Outdoor", "Active", "Athletic"] },
    Style { name: "Trendy", words: &["Trendy", "Internet-Famous", "Korean-Style", "New Hot"] },
];

/// Price tiers within a subcategory's range.
pub const TIER_NAMES: [&str; 3] = ["budget", "mid", "premium"];

/// Title words that reveal a tier (budget, mid, premium); may be absent from a title.
pub const TIER_WORDS: [&[&str]; 3] = [
    &["Affordable", "Value Pack", "Student Price", "Budget"],
    &["Quality", "Bestselling", "Popular"],
    &["Premium", "Deluxe", "Flagship", "Genuine"],
];

/// Service attributes ("Attribute:" field). Index constants below are used by the generator.
pub const ATTRIBUTES: [&str; 9] = [
    "Returns for Damaged Packages",
    "Flash Sale/Welfare Purchase",
    "Pre-sale",
    "Buy Now Pay Later",
    "7-Day No-Reason Return",
    "Free Shipping",
    "Authenticity Guarantee",
    "Price Protection",
    "Shipping Insurance",
];

const fn sub(name: &'static str, nouns: &'static [&'static str], lo: f64, hi: f64) -> Subcategory {
    Subcategory { name, nouns, price: (lo, hi) }
}

/// The ten categories.
pub const CATEGORIES: [Category; 10] = [
    Category {
        name: "Jewelry & Accessories",
        subs: [
            sub("Earrings", &["Earrings", "Stud Earrings", "Drop Earrings", "Hoop Earrings"], 5.0, 400.0),
            sub("Necklaces", &["Necklace", "Pendant Necklace", "Choker", "Clavicle Chain"], 9.9, 800.0),
            sub("Bracelets", &["Bracelet", "Bangle", "Charm Bracelet", "Beaded Bracelet"], 6.9, 600.0),
            sub("Rings", &["Ring", "Open Ring", "Couple Rings", "Stacking Ring"], 4.9, 900.0),
            sub("Hair Accessories", &["Hair Clip", "Hair Claw", "Headband", "Scrunchie"], 1.9, 120.0),
        ],
        brands: [
            &["Envy", "Xiaomei", "Shine Girl"],
            &["Lovisa", "Bloom Lane", "Aurum"],
            &["Swarovski", "Chow Tai Fook", "Pandora"],
        ],
        materials: &["Sterling Silver", "925 Silver", "Gold-Plated", "Freshwater Pearl", "Zircon", "Titanium Steel"],
        modifiers: &["Versatile", "Five-Petal Flower", "Anti-Allergy", "Butterfly", "Star and Moon", "Niche Design"],
    },
    Category {
        name: "Women's Clothing",
        subs: [
            sub("Dresses", &["Dress", "Maxi Dress", "Slip Dress", "Shirt Dress"], 29.0, 900.0),
            sub("T-Shirts", &["T-Shirt", "Crop Top", "Oversized Tee", "Polo Shirt"], 9.9, 300.0),
            sub("Jeans", &["Jeans", "Wide-Leg Jeans", "Straight Jeans", "Skinny Jeans"], 29.0, 700.0),
            sub("Coats", &["Coat", "Trench Coat", "Down Jacket", "Wool Coat"], 89.0, 2500.0),
            sub("Skirts", &["Skirt", "Pleated Skirt", "A-Line Skirt", "Midi Skirt"], 19.9, 600.0),
        ],
        brands: [
            &["Yiyi Closet", "Hanfu House", "Sweet Lady"],
            &["UR", "Peacebird", "Only"],
            &["Max Mara", "Theory", "Sandro"],
        ],
        materials: &["Pure Cotton", "Linen", "Chiffon", "Denim", "Wool Blend", "Silk"],
        modifiers: &["Slimming", "Loose Fit", "High-Waist", "Spring-Summer", "Autumn-Winter", "Plus Size"],
    },
    Category {
        name: "Shoes & Bags",
        subs: [
            sub("Sneakers", &["Sneakers", "Running Shoes", "Canvas Shoes", "Dad Shoes"], 29.0, 1500.0),
            sub("Boots", &["Boots", "Ankle Boots", "Chelsea Boots", "Snow Boots"], 49.0, 2000.0),
            sub("Sandals", &["Sandals", "Slippers", "Flip-Flops", "Slides"], 9.9, 500.0),
            sub("Handbags", &["Handbag", "Tote Bag", "Crossbody Bag", "Shoulder Bag"], 29.0, 5000.0),
            sub("Backpacks", &["Backpack", "School Bag", "Laptop Backpack", "Travel Backpack"], 25.0, 1200.0),
        ],
        brands: [&["Huili", "Feiyue", "Warrior"], &["Li-Ning", "Anta", "Skechers"], &["Nike", "Coach", "Dr. Martens"]],
        materials: &["Genuine Leather", "PU Leather", "Canvas", "Mesh", "Suede", "Nylon"],
        modifiers: &["Breathable", "Non-Slip", "Lightweight", "Large Capacity", "Waterproof", "Thick-Sole"],
    },
    Category {
        name: "Beauty & Skincare",
        subs: [
            sub("Face Cream", &["Face Cream", "Moisturizer", "Night Cream", "Eye Cream"], 19.9, 1500.0),
            sub("Lipstick", &["Lipstick", "Lip Gloss", "Lip Tint", "Lip Balm"], 9.9, 400.0),
            sub(
                "Facial Cleanser",
                &["Facial Cleanser", "Cleansing Foam", "Makeup Remover", "Cleansing Oil"],
                9.9,
                300.0,
            ),
            sub("Sunscreen", &["Sunscreen", "Sun Spray", "Sun Stick", "UV Lotion"], 19.9, 400.0),
            sub("Perfume", &["Perfume", "Eau de Toilette", "Body Mist", "Solid Perfume"], 19.9, 2000.0),
        ],
        brands: [
            &["Perfect Diary", "Bioaqua", "Hanhoo"],
            &["Winona", "Proya", "Innisfree"],
            &["Estee Lauder", "Lancome", "Chanel"],
        ],
        materials: &["Hyaluronic Acid", "Niacinamide", "Ceramide", "Amino Acid", "Vitamin C", "Plant Extract"],
        modifiers: &["Hydrating", "Brightening", "Long-Lasting", "Sensitive Skin", "Oil Control", "Travel Size"],
    },
    Category {
        name: "Toys & Kids",
        subs: [
            sub(
                "Building Block Puzzle",
                &["Building Blocks", "Digital Building Blocks", "Jigsaw Puzzle", "Magnetic Tiles"],
                9.9,
                1200.0,
            ),
            sub("Plush Toys", &["Plush Toy", "Stuffed Animal", "Doll Pillow", "Plush Keychain"], 9.9, 500.0),
            sub("Remote Control Cars", &["Remote Control Car", "RC Stunt Car", "RC Truck", "Drift Car"], 29.0, 1500.0),
            sub("Children's Books", &["Picture Book", "Early Reader Set", "Sticker Book", "Sound Book"], 9.9, 300.0),
            sub("Baby Feeding", &["Baby Bottle", "Sippy Cup", "Baby Bowl Set", "Bib"], 9.9, 400.0),
        ],
        brands: [
            &["Qiaoqiao", "Happy Kid", "Beiens"],
            &["Keeppley", "Babycare", "Jollybaby"],
            &["LEGO", "Jellycat", "Pigeon"],
        ],
        materials: &["ABS Plastic", "Food-Grade Silicone", "Solid Wood", "Soft Plush", "Glass", "Recycled Paper"],
        modifiers: &[
            "1-5 Years Early Education",
            "Intelligence Development",
            "Gift Box",
            "Birthday Gift",
            "Safe Rounded Edges",
            "Parent-Child",
        ],
    },
    Category {
        name: "Home & Kitchen",
        subs: [
            sub("Cookware", &["Non-Stick Pan", "Wok", "Soup Pot", "Frying Pan"], 29.0, 1500.0),
            sub("Storage Boxes", &["Storage Box", "Drawer Organizer", "Storage Basket", "Vacuum Bag"], 5.9, 300.0),
            sub("Bedding Sets", &["Bedding Set", "Duvet Cover", "Pillowcase", "Summer Quilt"], 39.0, 2500.0),
            sub("Thermos Cups", &["Thermos Cup", "Water Bottle", "Insulated Mug", "Tumbler"], 9.9, 500.0),
            sub("Kitchen Knives", &["Kitchen Knife", "Chef Knife", "Knife Set", "Cleaver"], 15.0, 1200.0),
        ],
        brands: [
            &["Jiayi", "Youpin Home", "Lehome"],
            &["Supor", "Joyoung", "Muji"],
            &["Zwilling", "Le Creuset", "Tiger"],
        ],
        materials: &[
            "Stainless Steel",
            "Cast Iron",
            "Ceramic Coating",
            "Bamboo Fiber",
            "Long-Staple Cotton",
            "Borosilicate Glass",
        ],
        modifiers: &["Household", "Large Capacity", "Dormitory", "Space-Saving", "Easy Clean", "Induction Compatible"],
    },
    Category {
        name: "Electronics",
        subs: [
            sub(
                "Wireless Earbuds",
                &["Wireless Earbuds", "Bluetooth Headset", "Noise-Cancelling Earbuds", "Sports Earphones"],
                29.0,
                2000.0,
            ),
            sub("Phone Cases", &["Phone Case", "Magnetic Case", "Shockproof Case", "Screen Protector"], 4.9, 200.0),
            sub(
                "Power Banks",
                &["Power Bank", "Magnetic Power Bank", "Fast-Charge Power Bank", "Mini Power Bank"],
                29.0,
                600.0,
            ),
            sub("Smart Watches", &["Smart Watch", "Fitness Band", "Kids Smart Watch", "Sports Watch"], 59.0, 4000.0),
            sub(
                "Bluetooth Speakers",
                &["Bluetooth Speaker", "Portable Speaker", "Smart Speaker", "Soundbar"],
                29.0,
                3000.0,
            ),
        ],
        brands: [&["Lenyes", "Baseus", "Remax"], &["Xiaomi", "Huawei", "Anker"], &["Apple", "Sony", "Bose"]],
        materials: &["Aluminum Alloy", "TPU", "Tempered Glass", "Silicone", "Carbon Fiber", "Liquid Silicone"],
        modifiers: &[
            "Long Battery Life",
            "Fast Charging",
            "Bluetooth 5.3",
            "Waterproof",
            "Low Latency",
            "Heart Rate Monitor",
        ],
    },
    Category {
        name: "Food & Snacks",
        subs: [
            sub("Nuts", &["Mixed Nuts", "Cashews", "Walnuts", "Pistachios"], 9.9, 300.0),
            sub("Tea", &["Green Tea", "Oolong Tea", "Pu'er Tea", "Flower Tea"], 9.9, 1500.0),
            sub(
                "Instant Noodles",
                &["Instant Noodles", "Snail Rice Noodles", "Hot Pot Noodles", "Cup Noodles"],
                5.9,
                120.0,
            ),
            sub("Dried Fruit", &["Dried Mango", "Dried Fruit Mix", "Raisins", "Freeze-Dried Strawberries"], 6.9, 200.0),
            sub("Coffee", &["Instant Coffee", "Coffee Beans", "Drip Coffee", "Cold Brew"], 9.9, 600.0),
        ],
        brands: [
            &["Liangpin Puzi", "Weilong", "Haoxiangni"],
            &["Three Squirrels", "Bestore", "Nestle"],
            &["Saturnbird", "Lavazza", "Tieguanyin Master"],
        ],
        materials: &["Family Pack", "Individually Wrapped", "Low Sugar", "Sugar-Free", "Organic", "Gift Tin"],
        modifiers: &["Spicy", "Crispy", "Office Snack", "Fresh Stock", "Net Red Flavor", "Breakfast"],
    },
    Category {
        name: "Sports & Outdoors",
        subs: [
            sub("Yoga Mats", &["Yoga Mat", "Fitness Mat", "Pilates Mat", "Thickened Mat"], 15.0, 600.0),
            sub("Dumbbells", &["Dumbbells", "Adjustable Dumbbells", "Kettlebell", "Barbell Set"], 19.9, 2000.0),
            sub("Camping Tents", &["Camping Tent", "Pop-Up Tent", "Canopy", "Sleeping Bag"], 49.0, 3000.0),
            sub("Fishing Rods", &["Fishing Rod", "Carbon Fishing Rod", "Fishing Reel", "Lure Set"], 19.9, 2500.0),
            sub("Cycling Gear", &["Cycling Jersey", "Bike Helmet", "Cycling Gloves", "Bike Light"], 15.0, 1500.0),
        ],
        brands: [
            &["Keep Basic", "Yuanwang", "Sportsgo"],
            &["Decathlon", "Naturehike", "Kawasaki"],
            &["Lululemon", "The North Face", "Shimano"],
        ],
        materials: &["TPE", "NBR", "Carbon Fiber", "Oxford Cloth", "Aluminum Frame", "Rubber-Coated Iron"],
        modifiers: &["Non-Slip", "Portable", "Beginner", "Professional", "Rainproof", "Quick-Dry"],
    },
    Category {
        name: "Pet Supplies",
        subs: [
            sub("Cat Food", &["Cat Food", "Kitten Food", "Freeze-Dried Cat Treats", "Wet Cat Food"], 9.9, 600.0),
            sub("Dog Food", &["Dog Food", "Puppy Food", "Dog Treats", "Dental Chews"], 9.9, 700.0),
            sub("Cat Litter", &["Cat Litter", "Tofu Cat Litter", "Bentonite Litter", "Litter Box"], 9.9, 400.0),
            sub("Pet Toys", &["Pet Toy", "Cat Teaser Wand", "Chew Toy", "Cat Scratcher"], 3.9, 300.0),
            sub("Pet Beds", &["Pet Bed", "Cat Nest", "Dog Sofa", "Pet Blanket"], 15.0, 800.0),
        ],
        brands: [
            &["Maifudi", "Petlike", "Nourse"],
            &["Myfoodie", "Pidan", "Navarch"],
            &["Royal Canin", "Orijen", "Acana"],
        ],
        materials: &["Grain-Free", "Freeze-Dried", "Natural Tofu", "Plush Fleece", "Sisal", "High Protein"],
        modifiers: &["All Life Stages", "Dust-Free", "Odor Control", "Indoor", "Small Breed", "Multi-Cat Household"],
    },
];

/// Number of categories.
pub const N_CATEGORIES: usize = CATEGORIES.len();
/// Subcategories per category.
pub const SUBS_PER_CATEGORY: usize = 5;
/// Number of subcategories (global index = category × 5 + local index).
pub const N_SUBCATEGORIES: usize = N_CATEGORIES * SUBS_PER_CATEGORY;
/// Number of styles.
pub const N_STYLES: usize = STYLES.len();
/// Number of price tiers.
pub const N_TIERS: usize = 3;
/// Brands per category: 3 tiers × 3 names, plus "-" (no brand) at index 9.
pub const BRANDS_PER_CATEGORY: usize = 10;
/// Index of the "-" (no brand) entry within a category's brands.
pub const NO_BRAND: usize = 9;

/// The subcategory with global index `s`.
pub fn subcategory(s: usize) -> &'static Subcategory {
    &CATEGORIES[s / SUBS_PER_CATEGORY].subs[s % SUBS_PER_CATEGORY]
}

/// Brand name of a category's local brand index (0..=8 by tier, 9 = "-").
pub fn brand_name(category: usize, brand: usize) -> &'static str {
    if brand >= NO_BRAND {
        return "-";
    }
    CATEGORIES[category].brands[brand / 3][brand % 3]
}

/// Price band (low, high) in yuan of tier `t` of subcategory `s`: the range split in log space.
pub fn tier_band(s: usize, t: usize) -> (f64, f64) {
    let (lo, hi) = subcategory(s).price;
    let (a, b) = (lo.ln(), hi.ln());
    let step = (b - a) / N_TIERS as f64;
    ((a + step * t as f64).exp(), (a + step * (t + 1) as f64).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_well_formed() {
        let mut names = std::collections::HashSet::new();
        for c in &CATEGORIES {
            assert!(!c.materials.is_empty() && !c.modifiers.is_empty());
            for s in &c.subs {
                assert!(names.insert(s.name), "duplicate subcategory {}", s.name);
                assert!(!s.nouns.is_empty());
                assert!(s.price.0 > 0.0 && s.price.0 < s.price.1, "{}", s.name);
            }
            for tier in c.brands {
                assert_eq!(tier.len(), 3);
            }
        }
        assert_eq!(names.len(), N_SUBCATEGORIES);
        for s in &STYLES {
            assert!(!s.words.is_empty());
        }
    }

    #[test]
    fn tier_bands_partition_the_range() {
        for s in 0..N_SUBCATEGORIES {
            let (lo, hi) = subcategory(s).price;
            assert!((tier_band(s, 0).0 - lo).abs() < 1e-9);
            assert!((tier_band(s, 2).1 - hi).abs() < 1e-6);
            assert!((tier_band(s, 0).1 - tier_band(s, 1).0).abs() < 1e-9);
        }
        assert_eq!(brand_name(0, NO_BRAND), "-");
        assert_eq!(brand_name(0, 0), "Envy");
    }
}
