"""Word lists and reference tables the sample-store generator draws from.

Everything here is fictional or public general knowledge (US state populations and approximate
combined sales-tax rates). Emails use reserved `example.*` domains.
"""

from __future__ import annotations

# (state, region, population in millions, combined sales tax in basis points, cold climate, cities)
US_STATES: list[tuple[str, str, float, int, bool, tuple[str, ...]]] = [
    ("Alabama", "South", 5.1, 929, False, ("Birmingham", "Huntsville", "Mobile")),
    ("Alaska", "West", 0.73, 182, True, ("Anchorage", "Fairbanks")),
    ("Arizona", "West", 7.4, 838, False, ("Phoenix", "Tucson", "Mesa")),
    ("Arkansas", "South", 3.1, 945, False, ("Little Rock", "Fayetteville")),
    ("California", "West", 39.0, 885, False, ("Los Angeles", "San Diego", "San Jose", "Sacramento", "Fresno")),
    ("Colorado", "West", 5.9, 781, True, ("Denver", "Colorado Springs", "Fort Collins")),
    ("Connecticut", "Northeast", 3.6, 635, True, ("Hartford", "New Haven", "Stamford")),
    ("Delaware", "South", 1.03, 0, False, ("Wilmington", "Dover")),
    ("District of Columbia", "South", 0.68, 600, False, ("Washington",)),
    ("Florida", "South", 22.6, 700, False, ("Miami", "Orlando", "Tampa", "Jacksonville")),
    ("Georgia", "South", 11.0, 738, False, ("Atlanta", "Savannah", "Augusta")),
    ("Hawaii", "West", 1.44, 450, False, ("Honolulu", "Hilo")),
    ("Idaho", "West", 1.96, 603, True, ("Boise", "Idaho Falls")),
    ("Illinois", "Midwest", 12.5, 886, True, ("Chicago", "Springfield", "Peoria")),
    ("Indiana", "Midwest", 6.9, 700, True, ("Indianapolis", "Fort Wayne", "Evansville")),
    ("Iowa", "Midwest", 3.2, 694, True, ("Des Moines", "Cedar Rapids")),
    ("Kansas", "Midwest", 2.9, 865, True, ("Wichita", "Kansas City", "Topeka")),
    ("Kentucky", "South", 4.5, 600, False, ("Louisville", "Lexington")),
    ("Louisiana", "South", 4.6, 956, False, ("New Orleans", "Baton Rouge", "Shreveport")),
    ("Maine", "Northeast", 1.4, 550, True, ("Portland", "Bangor")),
    ("Maryland", "South", 6.2, 600, False, ("Baltimore", "Annapolis", "Frederick")),
    ("Massachusetts", "Northeast", 7.0, 625, True, ("Boston", "Worcester", "Springfield")),
    ("Michigan", "Midwest", 10.0, 600, True, ("Detroit", "Grand Rapids", "Lansing")),
    ("Minnesota", "Midwest", 5.7, 804, True, ("Minneapolis", "Saint Paul", "Duluth")),
    ("Mississippi", "South", 2.9, 706, False, ("Jackson", "Gulfport")),
    ("Missouri", "Midwest", 6.2, 839, True, ("Kansas City", "St. Louis", "Springfield")),
    ("Montana", "West", 1.13, 0, True, ("Billings", "Missoula", "Bozeman")),
    ("Nebraska", "Midwest", 2.0, 697, True, ("Omaha", "Lincoln")),
    ("Nevada", "West", 3.2, 824, False, ("Las Vegas", "Reno", "Henderson")),
    ("New Hampshire", "Northeast", 1.4, 0, True, ("Manchester", "Nashua", "Concord")),
    ("New Jersey", "Northeast", 9.3, 660, True, ("Newark", "Jersey City", "Trenton", "Hoboken")),
    ("New Mexico", "West", 2.1, 762, False, ("Albuquerque", "Santa Fe", "Las Cruces")),
    ("New York", "Northeast", 19.6, 853, True, ("New York", "Brooklyn", "Buffalo", "Rochester", "Albany")),
    ("North Carolina", "South", 10.8, 700, False, ("Charlotte", "Raleigh", "Greensboro", "Durham")),
    ("North Dakota", "Midwest", 0.78, 696, True, ("Fargo", "Bismarck")),
    ("Ohio", "Midwest", 11.8, 724, True, ("Columbus", "Cleveland", "Cincinnati", "Toledo")),
    ("Oklahoma", "South", 4.1, 899, False, ("Oklahoma City", "Tulsa")),
    ("Oregon", "West", 4.2, 0, False, ("Portland", "Eugene", "Salem", "Bend")),
    ("Pennsylvania", "Northeast", 13.0, 634, True, ("Philadelphia", "Pittsburgh", "Allentown", "Harrisburg")),
    ("Rhode Island", "Northeast", 1.1, 700, True, ("Providence", "Warwick")),
    ("South Carolina", "South", 5.4, 750, False, ("Charleston", "Columbia", "Greenville")),
    ("South Dakota", "Midwest", 0.92, 611, True, ("Sioux Falls", "Rapid City")),
    ("Tennessee", "South", 7.1, 955, False, ("Nashville", "Memphis", "Knoxville", "Chattanooga")),
    ("Texas", "South", 30.5, 820, False, ("Houston", "Dallas", "Austin", "San Antonio", "Fort Worth", "El Paso")),
    ("Utah", "West", 3.4, 725, True, ("Salt Lake City", "Provo", "Ogden")),
    ("Vermont", "Northeast", 0.65, 636, True, ("Burlington", "Montpelier")),
    ("Virginia", "South", 8.7, 577, False, ("Virginia Beach", "Richmond", "Arlington", "Norfolk")),
    ("Washington", "West", 7.8, 938, True, ("Seattle", "Spokane", "Tacoma", "Bellevue")),
    ("West Virginia", "South", 1.77, 657, False, ("Charleston", "Morgantown")),
    ("Wisconsin", "Midwest", 5.9, 570, True, ("Milwaukee", "Madison", "Green Bay")),
    ("Wyoming", "West", 0.58, 544, True, ("Cheyenne", "Casper")),
]

# (country, currency, share of international DTC demand, cold, [(region, cities)])
INTERNATIONAL: list[tuple[str, str, float, bool, list[tuple[str, tuple[str, ...]]]]] = [
    ("Canada", "CAD", 3.0, True, [
        ("Ontario", ("Toronto", "Ottawa", "Hamilton")),
        ("British Columbia", ("Vancouver", "Victoria")),
        ("Quebec", ("Montreal", "Quebec City")),
        ("Alberta", ("Calgary", "Edmonton")),
    ]),
    ("United Kingdom", "GBP", 1.5, True, [
        ("England", ("London", "Manchester", "Birmingham", "Leeds")),
        ("Scotland", ("Glasgow", "Edinburgh")),
    ]),
    ("Australia", "AUD", 0.8, False, [
        ("New South Wales", ("Sydney", "Newcastle")),
        ("Victoria", ("Melbourne", "Geelong")),
        ("Queensland", ("Brisbane",)),
    ]),
    ("Germany", "EUR", 0.5, True, [
        ("Bavaria", ("Munich", "Nuremberg")),
        ("Berlin", ("Berlin",)),
        ("Hamburg", ("Hamburg",)),
    ]),
    ("Mexico", "MXN", 0.25, False, [
        ("Nuevo León", ("Monterrey",)),
        ("Jalisco", ("Guadalajara",)),
    ]),
]
INTERNATIONAL_DTC_SHARE = 0.06  # share of DTC customers living outside the United States
HOME_STATES = ("New York", "New Jersey", "Connecticut")  # the flagship store's catchment (POS)
STORE_LOCATION = ("United States", "New York", "Brooklyn")

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard "
    "Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty "
    "Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua "
    "Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald "
    "Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Dorothy Jacob Amy Gary Kathleen Nicholas "
    "Angela Eric Shirley Jonathan Emma Stephen Brenda Larry Pamela Justin Nicole Scott Anna Brandon "
    "Samantha Benjamin Katherine Samuel Christine Gregory Debra Alexander Rachel Patrick Carolyn Frank "
    "Janet Raymond Maria Jack Olivia Dennis Heather Jerry Helen Tyler Catherine Aaron Diane Jose Julie "
    "Adam Victoria Nathan Joyce Henry Lauren Zachary Kelly Douglas Christina Peter Ruth Kyle Joan "
    "Noah Virginia Ethan Judith Jeremy Evelyn Christian Hannah Walter Andrea Keith Megan Austin Cheryl "
    "Roger Jacqueline Terry Madison Sean Teresa Gerald Abigail Carl Sophia Dylan Martha Harold Sara "
    "Jordan Gloria Jesse Janice Bryan Kathryn Lawrence Ann Arthur Isabella Gabriel Judy Bruce Charlotte "
    "Logan Julia Billy Grace Joe Amber Alan Alice Juan Jean Elijah Denise Willie Frances Albert Danielle "
    "Wayne Marilyn Randy Natalie Mason Beverly Vincent Diana Liam Brittany Roy Theresa Bobby Kayla "
    "Caleb Alexis Bradley Doris Russell Lori Lucas Tiffany Priya Wei Aisha Mateo Sofia Diego Yuki Omar"
).split()

LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker "
    "Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper "
    "Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James "
    "Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster "
    "Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher "
    "Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno "
    "West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall "
    "Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb "
    "Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason "
    "Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren "
    "Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne "
    "Grant Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight "
    "Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry"
).split()

EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example", "inbox.example")

# Company names: "<stem> <industry noun> <suffix>"
COMPANY_STEMS = (
    "Hartwell Bluewater Ironside Keystone Summit Granite Redwood Northgate Riverbend Cedar Copperfield "
    "Lakeshore Pioneer Sterling Harbor Prairie Beacon Frontier Evergreen Highland Oakridge Silverline "
    "Blackstone Westfield Eastbrook Stonebridge Timberline Meridian Crescent Heritage Liberty Patriot "
    "Atlas Vanguard Apex Titan Cornerstone Landmark Millbrook Ashford Brighton Fairview Glenwood "
    "Hawthorne Kingsley Lexington Marlow Newbury Pinecrest Quarry Ridgeway Sherwood Thornton Union "
    "Valley Whitfield Yardley Anchor Bridgeport Canyon Delta Eagle Falcon Gateway Horizon Ironwood "
    "Juniper Kestrel Lantern Mariner Northstar Orchard Pacific Quartz Rockport Sentinel Tidewater "
    "Upland Vista Wildwood Alder Birch Cobalt Driftwood Emberly Foxglove Goldcrest Hollis Ivory"
).split()
COMPANY_NOUNS: dict[str, tuple[str, ...]] = {
    "Contractor": ("Builders", "Construction", "Contracting", "Electric", "Plumbing", "Roofing", "Mechanical", "Renovation"),
    "Distributor": ("Supply", "Industrial Supply", "Distribution", "Wholesale", "Trade Supply"),
    "Retailer": ("Hardware", "Outfitters", "Workwear", "Home & Garden", "General Store"),
    "OEM": ("Manufacturing", "Machine Works", "Equipment", "Fabrication", "Motors"),
    "Manufacturing": ("Industries", "Foundry", "Plastics", "Metalworks", "Assembly"),
    "Facilities Management": ("Facility Services", "Property Services", "Maintenance", "Building Services"),
    "Government & Education": ("School District", "Public Works", "County Services", "University Facilities"),
}
COMPANY_SUFFIXES = ("Inc.", "LLC", "Co.", "Group", "Corp.", "Ltd.", "")

B2B_ROLES = (
    "Purchasing Manager", "Procurement Specialist", "Operations Manager", "Engineer",
    "Maintenance Supervisor", "Owner", "Executive", "Office Manager", "Site Foreman",
)

SALES_REPS: dict[str, tuple[str, ...]] = {
    "Northeast": ("Dana Whitaker", "Marcus Feld"),
    "Midwest": ("Priya Raman", "Tom Becker"),
    "South": ("Luis Ortega", "Alicia Boone"),
    "West": ("Kenji Mori", "Rachel Stein"),
    "International": ("Hannah Clarke",),
}
HOUSE_ACCOUNT = "House Account"

# Product catalogue: product types with demand shares, price ranges, cost ratios and return rates.
# name, code, dtc share, b2b share, price median (USD), price sigma, cost ratio, DTC return rate,
# B2B return rate, variant style, monthly seasonality (Jan..Dec), share of products
PRODUCT_TYPES: list[dict] = [
    dict(name="Work Apparel", code="WA", dtc=0.28, b2b=0.07, price=38.0, sigma=0.35, cost=0.38,
         ret_dtc=0.15, ret_b2b=0.04, variants="apparel", n=0.22,
         season=(0.9, 0.85, 0.95, 1.0, 1.05, 1.05, 1.0, 1.0, 1.05, 1.05, 1.0, 1.05)),
    dict(name="Outerwear", code="OW", dtc=0.10, b2b=0.04, price=129.0, sigma=0.35, cost=0.42,
         ret_dtc=0.13, ret_b2b=0.03, variants="apparel", n=0.09,
         season=(1.7, 1.3, 0.8, 0.55, 0.35, 0.25, 0.25, 0.35, 0.7, 1.3, 1.8, 2.1)),
    dict(name="Footwear", code="FW", dtc=0.12, b2b=0.05, price=149.0, sigma=0.3, cost=0.45,
         ret_dtc=0.12, ret_b2b=0.03, variants="footwear", n=0.08,
         season=(0.95, 0.9, 1.0, 1.05, 1.05, 1.0, 0.95, 1.0, 1.05, 1.05, 1.0, 1.0)),
    dict(name="Power Tools", code="PT", dtc=0.10, b2b=0.12, price=189.0, sigma=0.45, cost=0.58,
         ret_dtc=0.05, ret_b2b=0.02, variants="power", n=0.10,
         season=(0.8, 0.85, 1.0, 1.15, 1.15, 1.1, 1.0, 0.95, 0.95, 0.95, 1.1, 1.3)),
    dict(name="Hand Tools", code="HT", dtc=0.10, b2b=0.10, price=29.0, sigma=0.55, cost=0.45,
         ret_dtc=0.03, ret_b2b=0.01, variants="single", n=0.13,
         season=(0.9, 0.9, 1.0, 1.1, 1.1, 1.05, 1.0, 0.95, 0.95, 0.95, 1.05, 1.2)),
    dict(name="Safety Gear", code="SG", dtc=0.06, b2b=0.20, price=22.0, sigma=0.5, cost=0.40,
         ret_dtc=0.04, ret_b2b=0.015, variants="safety", n=0.10,
         season=(1.0, 1.0, 1.0, 1.05, 1.05, 1.05, 1.0, 1.0, 1.0, 1.0, 0.95, 0.9)),
    dict(name="Consumables", code="CN", dtc=0.06, b2b=0.30, price=16.0, sigma=0.5, cost=0.35,
         ret_dtc=0.015, ret_b2b=0.005, variants="packs", n=0.12,
         season=(1.0, 1.0, 1.05, 1.05, 1.05, 1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 0.9)),
    dict(name="Batteries & Chargers", code="BC", dtc=0.06, b2b=0.07, price=99.0, sigma=0.4, cost=0.55,
         ret_dtc=0.04, ret_b2b=0.015, variants="battery", n=0.05,
         season=(0.9, 0.9, 1.0, 1.05, 1.05, 1.0, 1.0, 0.95, 0.95, 1.0, 1.1, 1.25)),
    dict(name="Storage", code="ST", dtc=0.05, b2b=0.03, price=79.0, sigma=0.5, cost=0.48,
         ret_dtc=0.06, ret_b2b=0.02, variants="single", n=0.05,
         season=(0.9, 0.9, 1.0, 1.05, 1.05, 1.0, 1.0, 0.95, 1.0, 1.0, 1.05, 1.2)),
    dict(name="Accessories", code="AC", dtc=0.07, b2b=0.02, price=19.0, sigma=0.4, cost=0.35,
         ret_dtc=0.07, ret_b2b=0.02, variants="accessory", n=0.06,
         season=(1.1, 0.95, 0.95, 0.95, 1.0, 1.0, 0.95, 0.95, 1.0, 1.05, 1.1, 1.25)),
]

VENDORS: dict[str, tuple[str, ...]] = {
    "Work Apparel": ("Harbor & Pine", "Ironclad Workwear", "Northwind"),
    "Outerwear": ("Harbor & Pine", "Trailhead Outfitters", "Northwind"),
    "Footwear": ("Granite Boot Co.", "Trailhead Outfitters"),
    "Power Tools": ("Voltline", "Keystone Tools"),
    "Hand Tools": ("Keystone Tools", "Summit Pro", "Northwind"),
    "Safety Gear": ("Brightline Safety", "Summit Pro"),
    "Consumables": ("Summit Pro", "Brightline Safety", "Northwind"),
    "Batteries & Chargers": ("Voltline",),
    "Storage": ("Keystone Tools", "Granite Boot Co.", "Northwind"),
    "Accessories": ("Harbor & Pine", "Northwind", "Trailhead Outfitters"),
}

COLLECTIONS: dict[str, tuple[str, ...]] = {
    "Work Apparel": ("Workwear Essentials", "Heritage Line", "Summer Workwear"),
    "Outerwear": ("Cold Weather", "Heritage Line"),
    "Footwear": ("Boots & Footwear",),
    "Power Tools": ("Pro Series", "Cordless Tools"),
    "Hand Tools": ("Job Site Essentials", "Pro Series"),
    "Safety Gear": ("Safety First",),
    "Consumables": ("Job Site Supplies",),
    "Batteries & Chargers": ("Cordless Tools",),
    "Storage": ("Job Site Essentials", "Storage & Organization"),
    "Accessories": ("Workwear Essentials", "Cold Weather", "Gifts"),
}

# Title parts per product type: (adjectives, materials/qualifiers, nouns)
TITLE_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Work Apparel": (
        ("Classic", "Heavyweight", "Flex", "Rugged", "Everyday", "Pro", "Heritage", "Ripstop", "Vented", "Stretch"),
        ("Duck Canvas", "Cotton", "Twill", "Denim", "Flannel", "Performance", "Henley", "Pocket", "Long-Sleeve", "Crew"),
        ("Work Shirt", "Work Pants", "Carpenter Jeans", "Hoodie", "T-Shirt", "Bib Overalls", "Cargo Shorts", "Coveralls", "Utility Pants", "Polo"),
    ),
    "Outerwear": (
        ("Insulated", "Sherpa-Lined", "Waterproof", "Quilted", "Storm", "Thermal", "Heritage", "Arctic"),
        ("Duck", "Softshell", "Canvas", "Down", "Fleece", "Shell"),
        ("Work Jacket", "Vest", "Parka", "Chore Coat", "Bomber Jacket", "Rain Jacket", "Fleece Jacket"),
    ),
    "Footwear": (
        ("Steel-Toe", "Composite-Toe", "Waterproof", "Wedge", "Lightweight", "Insulated", "Slip-Resistant", "Classic"),
        ('6"', '8"', "Moc-Toe", "Pull-On", "Lace-Up", "Leather"),
        ("Work Boot", "Logger Boot", "Wellington", "Hiker", "Work Shoe"),
    ),
    "Power Tools": (
        ("20V", "18V", "Brushless", "Compact", "Heavy-Duty", "Cordless", "Pro"),
        ("Max", "XR", "Fuel", "Lithium", "Hammer", "Impact"),
        ("Drill/Driver", "Impact Driver", "Circular Saw", "Reciprocating Saw", "Angle Grinder", "Jigsaw", "Oscillating Tool", "Rotary Hammer", "Orbital Sander", "Nailer"),
    ),
    "Hand Tools": (
        ("Forged", "Fiberglass", "Precision", "Magnetic", "Ratcheting", "Heavy-Duty", "Compact", "Pro"),
        ("16 oz", "25 ft", "Torx", "Chrome", "Locking", "Adjustable"),
        ("Claw Hammer", "Tape Measure", "Screwdriver Set", "Pliers", "Utility Knife", "Wrench Set", "Level", "Pry Bar", "Socket Set", "Chisel Set"),
    ),
    "Safety Gear": (
        ("Hi-Vis", "Anti-Fog", "Cut-Resistant", "Impact", "Vented", "ANSI Class 2", "Flame-Resistant"),
        ("Type I", "Mesh", "Nitrile", "Polycarbonate", "Ratchet", "Reflective"),
        ("Safety Vest", "Safety Glasses", "Hard Hat", "Work Gloves", "Ear Muffs", "Face Shield", "Knee Pads", "Respirator"),
    ),
    "Consumables": (
        ("Premium", "Contractor", "Bulk", "Heavy-Duty", "Industrial", "All-Purpose"),
        ("Nitrile", "Carbide", "120-Grit", "Zinc", "Titanium", "Diamond"),
        ("Disposable Gloves", "Utility Blades", "Sanding Discs", "Drywall Screws", "Drill Bits", "Cut-Off Wheels", "Zip Ties", "Duct Tape", "Shop Towels", "Marking Paint", "Dust Masks", "Saw Blades"),
    ),
    "Batteries & Chargers": (
        ("20V", "18V", "12V", "High-Output", "Compact"),
        ("Lithium-Ion", "XR", "Max"),
        ("Battery", "Battery 2-Pack", "Rapid Charger", "Dual-Port Charger", "Starter Kit"),
    ),
    "Storage": (
        ("Rolling", "Stackable", "Waterproof", "Heavy-Duty", "Modular", "Steel"),
        ("Pro", "Canvas", "Job Site", "22-inch"),
        ("Tool Box", "Tool Bag", "Organizer", "Tool Chest", "Parts Bin", "Backpack"),
    ),
    "Accessories": (
        ("Knit", "Wool-Blend", "Merino", "Heavyweight", "Classic", "Reflective"),
        ("Ribbed", "Cushioned", "Leather", "Canvas"),
        ("Beanie", "Work Socks", "Belt", "Suspenders", "Cap", "Neck Gaiter", "Lunch Cooler", "Water Bottle"),
    ),
}

APPAREL_SIZES = ("S", "M", "L", "XL", "XXL")
APPAREL_SIZE_WEIGHTS = (0.12, 0.27, 0.30, 0.20, 0.11)
APPAREL_COLORS = ("Black", "Navy", "Khaki", "Charcoal", "Brown", "Olive", "Gravel", "Hi-Vis Yellow")
COLOR_CODES = {
    "Black": "BLK", "Navy": "NVY", "Khaki": "KHK", "Charcoal": "CHR", "Brown": "BRN", "Olive": "OLV",
    "Gravel": "GRV", "Hi-Vis Yellow": "HVY", "Wheat": "WHT", "Dark Brown": "DBR", "Gray": "GRY",
    "Orange": "ORG", "Yellow": "YEL", "Clear": "CLR", "Smoke": "SMK", "Amber": "AMB", "One Size": "OS",
    "S/M": "SM", "L/XL": "LXL",
}
BOOT_SIZES = ("7", "8", "9", "10", "11", "12", "13")
BOOT_SIZE_WEIGHTS = (0.05, 0.11, 0.2, 0.24, 0.2, 0.13, 0.07)
SAFETY_VARIANTS = (("S/M", "L/XL"), ("One Size",), ("Clear", "Smoke", "Amber"), ("Yellow", "Orange"))
PACK_VARIANTS = (("10-pack", 1.0), ("50-pack", 4.2), ("100-pack", 7.5))
BATTERY_VARIANTS = (("2.0Ah", 1.0), ("5.0Ah", 1.6), ("8.0Ah", 2.2))
POWER_VARIANTS = (("Tool only", 1.0), ("Kit with 2 batteries", 1.65))
ACCESSORY_VARIANTS = (("One Size",), ("Black", "Brown"), ("Black", "Gray", "Orange"))

# Discount campaigns (code, percent off or None for fixed, fixed amount in cents)
DISCOUNT_CODES = {
    "BFCM25": (25, 0),
    "SPRING10": (10, 0),
    "SUMMER15": (15, 0),
    "WELCOME10": (10, 0),
    "VIP20": (20, 0),
    "SAVE20": (0, 2000),  # $20 off orders of $150 or more
}

# Online store traffic: (referrer_source, referring_channel, share of non-converting human sessions,
# share of converting sessions, referrer domain)
TRAFFIC_SOURCES: list[tuple[str, str, float, float]] = [
    ("direct", "Direct", 0.26, 0.30),
    ("google", "Organic search", 0.22, 0.20),
    ("bing", "Organic search", 0.03, 0.03),
    ("duckduckgo", "Organic search", 0.01, 0.01),
    ("google", "Paid search", 0.10, 0.11),
    ("facebook", "Social", 0.08, 0.04),
    ("instagram", "Social", 0.08, 0.04),
    ("tiktok", "Social", 0.05, 0.015),
    ("youtube", "Social", 0.02, 0.01),
    ("pinterest", "Social", 0.01, 0.005),
    ("email", "Email", 0.07, 0.16),
    ("jobsitejournal.example", "Referral", 0.03, 0.025),
    ("reddit", "Social", 0.02, 0.01),
    ("chatgpt", "AI assistant", 0.015, 0.03),
    ("perplexity", "AI assistant", 0.005, 0.01),
]

BLOG_POSTS = (
    "choosing-the-right-work-boot", "winter-layering-guide", "cordless-tool-battery-guide",
    "job-site-safety-checklist", "how-to-break-in-duck-canvas", "best-gloves-for-every-trade",
    "organizing-your-truck", "ansi-hi-vis-classes-explained", "drill-vs-impact-driver",
    "caring-for-leather-boots", "bfcm-gift-guide", "spring-project-checklist",
)
OTHER_PAGES = ("/pages/wholesale", "/pages/size-guide", "/pages/contact", "/pages/store-locator", "/account/login")
