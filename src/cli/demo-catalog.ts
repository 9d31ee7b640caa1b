// The demo catalog of `npm run seed`: eight categories, each with its own product types, names,
// descriptions and attributes (sizes and materials for apparel, wattage and connectivity for
// electronics, author and ISBN for books...), built from a PRNG stream per product. Each
// category's product types, price ranges, tags, brands and longer word lists are data, in
// demo/catalog.json; how a product is put together from them is here.

import type { Static } from 'typebox';
import type { Product } from '../domain/entities/index.ts';
import catalogFile from './demo/catalog.json' with { type: 'json' };
import type { Random } from './seeded-random.ts';

export type ProductFields = Static<typeof Product.writable>;
type Attributes = ProductFields['attributes'];

/** A shop price in cents: mostly .99, sometimes .95, .49 or round. */
function price(rng: Random, [minEuro, maxEuro]: readonly [number, number]): ProductFields['price'] {
  const euros = rng.int(minEuro, maxEuro);
  const cents = rng.weighted([
    [99, 60],
    [95, 12],
    [49, 10],
    [0, 18],
  ] as const);
  const amount = cents === 0 ? euros * 100 : (euros - 1) * 100 + cents;
  return { amount: Math.max(amount, 99), currency: 'EUR' };
}

const capitalize = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);
const listing = (items: readonly (string | number)[]) =>
  items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
const slug = (text: string) =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');

/** A check digit of GTIN-8/12/13/14 (and ISBN-13) over the digits before it. */
function gtinCheckDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    const digit = Number(body[body.length - 1 - i]);
    sum += i % 2 === 0 ? digit * 3 : digit;
  }
  return String((10 - (sum % 10)) % 10);
}

/**
 * A unique EAN-13 per product position: prefix 20 (GS1's restricted-circulation range, never
 * a real product's barcode), then the position scrambled by a bijection modulo 10^10.
 */
function ean13(index: number): string {
  const scrambled = (BigInt(index) * 7_654_321_019n + 1_234_567_891n) % 10_000_000_000n;
  const body = `20${scrambled.toString().padStart(10, '0')}`;
  return body + gtinCheckDigit(body);
}

/** A unique ISBN-13 per product position (978-1, then the position scrambled modulo 10^8). */
function isbn13(index: number): string {
  const scrambled = (BigInt(index) * 76_543_217n + 31_415_927n) % 100_000_000n;
  const body = `9781${scrambled.toString().padStart(8, '0')}`;
  return body + gtinCheckDigit(body);
}

interface ProductType {
  code: string;
  noun: string;
  price: readonly [number, number];
}

/** What a table keyed by product type holds for this one; a type missing from it is a bug of the table. */
function forType<V>(table: Readonly<Record<string, V>>, type: ProductType): V {
  const value = table[type.code];
  if (value === undefined) throw new Error(`no entry for product type ${type.code}`);
  return value;
}

interface Built {
  name: string;
  description: string;
  attributes: Attributes;
  tags: string[];
}

interface Category {
  slug: string;
  prefix: string;
  weight: number;
  types: readonly ProductType[];
  /** Tags any product of the category may carry, besides those its attributes imply. */
  tags: readonly string[];
  build(rng: Random, type: ProductType, index: number): Built;
}

// JSON has no pairs: the file's [min, max] price ranges are read as such.
const CATALOG = catalogFile as typeof catalogFile & {
  categories: Record<keyof (typeof catalogFile)['categories'], { types: ProductType[] }>;
};
type Entries = (typeof CATALOG)['categories'];

/** A category of the file, whose products `build` puts together from the file's entry for it. */
function category<S extends keyof Entries>(
  slug: S,
  build: (rng: Random, type: ProductType, entry: Entries[S], index: number) => Built,
): Category {
  const entry = CATALOG.categories[slug];
  return { slug, ...entry, build: (rng, type, index) => build(rng, type, entry, index) };
}

/** The tags whose condition holds, in the order written. */
const tagged = (conditions: Readonly<Record<string, boolean>>) =>
  Object.keys(conditions).filter((tag) => conditions[tag]);

const apparel = category('apparel', (rng, type, { words, brands }) => {
  const materials: Record<string, string[]> = words.materials;
  const weights: Record<string, [number, number]> = {
    TEE: [140, 220],
    HOODIE: [450, 750],
    JEANS: [550, 800],
    CHINO: [400, 600],
    SHIRT: [180, 300],
    SWEATER: [300, 550],
    JACKET: [350, 900],
    DRESS: [250, 420],
    POLO: [200, 280],
    SOCKS: [90, 150],
  };
  const brand = rng.pick(brands);
  const style = rng.pick(words.styles);
  const material = rng.pick(forType(materials, type));
  const sizes =
    type.code === 'JEANS' || type.code === 'CHINO'
      ? rng.run(['28', '29', '30', '31', '32', '33', '34', '36', '38'], 5)
      : type.code === 'SOCKS'
        ? ['35-38', '39-42', '43-46']
        : rng.run(['XXS', 'XS', 'S', 'M', 'L', 'XL', 'XXL'], 4);
  const colors = rng.some(CATALOG.colours, 1, 4);
  const fit = rng.pick(['slim', 'regular', 'relaxed', 'oversized']);
  const care = /cashmere|lambswool|merino/.test(material)
    ? rng.pick(['hand wash cold', 'machine wash 30 °C, wool cycle'])
    : type.code === 'JACKET' && material === 'waxed cotton'
      ? 'do not wash; re-wax yearly'
      : rng.pick(['machine wash 30 °C', 'machine wash 40 °C', 'machine wash 30 °C, do not tumble dry']);
  const gender =
    type.code === 'DRESS'
      ? 'women'
      : rng.weighted([
          ['unisex', 5],
          ['women', 3],
          ['men', 3],
        ] as const);
  const [minWeight, maxWeight] = forType(weights, type);
  const attributes: Attributes = {
    gender,
    sizes,
    colors,
    material,
    fit,
    weightGrams: rng.int(minWeight, maxWeight),
    care,
    countryOfOrigin: rng.pick(['PT', 'IT', 'TR', 'RO', 'IN', 'BD', 'LT']),
  };
  const tags = tagged({
    organic: material.includes('organic'),
    recycled: material.includes('recycled'),
    wool: /wool|cashmere/.test(material),
    waterproof: type.code === 'JACKET',
  });
  const made = `made of ${material} (${String(attributes.weightGrams)} g)`;
  return {
    name: `${brand} ${style} ${type.noun}, ${material}`,
    description:
      `${capitalize(style.toLowerCase())} ${type.noun} by ${brand}, ${made}. ` +
      `A ${fit} fit${gender === 'unisex' ? ' that works for everyone' : ''}, in ${listing(colors)}; ` +
      `sizes ${sizes[0]} to ${sizes[sizes.length - 1]}. Care: ${care}.`,
    attributes,
    tags,
  };
});

const footwear = category('footwear', (rng, type, { words, brands }) => {
  const uppers: Record<string, string[]> = words.uppers;
  const brand = rng.pick(brands);
  const model = rng.pick(words.models);
  const upper = rng.pick(forType(uppers, type));
  const sole =
    type.code === 'RUN' || type.code === 'TRAIL'
      ? rng.pick(['EVA foam', 'carbon-plated foam', 'TPU foam'])
      : rng.pick(['rubber', 'Vibram rubber', 'cork and rubber', 'crepe rubber']);
  const waterproof = type.code === 'HIKE' || ((type.code === 'TRAIL' || type.code === 'BOOT') && rng.chance(0.5));
  const closure = forType(
    {
      RUN: 'laces',
      TRAIL: 'laces',
      SNEAKER: 'laces',
      BOOT: 'elastic sides',
      HIKE: 'laces',
      SANDAL: rng.pick(['buckle', 'hook and loop']),
      LOAFER: 'slip-on',
      SLIPPER: 'slip-on',
    },
    type,
  );
  const sizesEU = rng.run([36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47], 6);
  const color = rng.pick(['black', 'white', 'tan', 'chestnut', 'grey', 'navy', 'olive', 'off-white']);
  const attributes: Attributes = {
    sizesEU,
    color,
    upper,
    sole,
    closure,
    waterproof,
    widthFit: rng.weighted([
      ['regular', 6],
      ['wide', 2],
      ['narrow', 1],
    ] as const),
    weightGrams: rng.int(
      type.code === 'BOOT' || type.code === 'HIKE' ? 450 : 180,
      type.code === 'BOOT' || type.code === 'HIKE' ? 750 : 380,
    ),
  };
  if (type.code === 'RUN' || type.code === 'TRAIL') attributes.heelDropMm = rng.pick([4, 6, 8, 10]);
  const tags = tagged({
    waterproof,
    leather: upper.includes('leather') || upper === 'suede' || upper === 'nubuck',
    running: type.code === 'RUN' || type.code === 'TRAIL',
    hiking: type.code === 'HIKE' || type.code === 'TRAIL',
  });
  const closes = closure === 'slip-on' ? 'slips on' : `closes with ${closure}`;
  return {
    name: `${brand} ${model} ${type.noun}, ${color}`,
    description:
      `The ${model} ${type.noun} from ${brand}: ${upper} upper on a ${sole} sole, ${closes}` +
      `${waterproof ? ', and a waterproof membrane keeps your feet dry' : ''}. ` +
      `EU sizes ${sizesEU[0]}-${sizesEU[sizesEU.length - 1]}, ${String(attributes.widthFit)} width, about ` +
      `${String(attributes.weightGrams)} g per shoe.`,
    attributes,
    tags,
  };
});

const kitchen = category('kitchen', (rng, type, { words, brands }) => {
  const brand = rng.pick(brands);
  // A type made of one material has a string in the table, and draws nothing for it.
  const materials: Record<string, string | string[]> = words.materials;
  const choices = forType(materials, type);
  const material = typeof choices === 'string' ? choices : rng.pick(choices);
  const attributes: Attributes = { material };
  let size = '';
  switch (type.code) {
    case 'KNIFE':
      attributes.bladeLengthCm = rng.pick([15, 18, 20, 21, 24]);
      attributes.handle = rng.pick(['olive wood', 'walnut', 'POM', 'pakkawood']);
      attributes.hardnessHRC = rng.int(56, 61);
      size = `${attributes.bladeLengthCm} cm`;
      break;
    case 'SKILLET':
    case 'PAN':
      attributes.diameterCm = rng.pick([20, 24, 26, 28, 30]);
      attributes.inductionCompatible = material !== 'ceramic non-stick' || rng.chance(0.6);
      attributes.ovenSafeC = rng.pick([180, 220, 260]);
      size = `${attributes.diameterCm} cm`;
      break;
    case 'DUTCH':
    case 'SAUCE':
    case 'KETTLE':
      attributes.capacityLiters =
        type.code === 'DUTCH' ? rng.pick([2.8, 3.8, 4.7, 5.7, 6.7]) : rng.pick([1.5, 2, 2.5, 3]);
      attributes.inductionCompatible = true;
      if (type.code === 'DUTCH')
        attributes.color = rng.pick(['cherry red', 'sage', 'ocean blue', 'matte black', 'cream']);
      size = `${attributes.capacityLiters} l`;
      break;
    case 'BOARD':
      attributes.dimensionsCm = rng.pick([
        [40, 30, 3],
        [50, 35, 4],
        [30, 20, 2],
        [45, 30, 3.5],
      ]);
      size = (attributes.dimensionsCm as number[]).slice(0, 2).join(' x ') + ' cm';
      break;
    case 'MOKA':
      attributes.cups = rng.pick([3, 6, 9, 12]);
      attributes.inductionCompatible = material === 'stainless steel';
      size = `${attributes.cups} cups`;
      break;
    case 'BOWLS':
      attributes.pieces = rng.pick([3, 4, 5]);
      size = `${attributes.pieces} pieces`;
      break;
  }
  attributes.dishwasherSafe =
    !/cast iron|carbon steel|wood|walnut|oak|bamboo|Damascus|copper/.test(material) && type.code !== 'KNIFE';
  const castIron = type.code === 'DUTCH' || type.code === 'SKILLET';
  attributes.weightGrams = castIron ? rng.int(2200, 6500) : rng.int(150, 1800);
  const tags = tagged({
    induction: attributes.inductionCompatible === true,
    coffee: type.code === 'MOKA',
    'buy-for-life': /cast iron|carbon steel/.test(material),
  });
  return {
    name: `${brand} ${type.noun}, ${size}`,
    description:
      `${capitalize(type.noun)} by ${brand} in ${material}, ${size}. ` +
      (attributes.inductionCompatible === true ? 'Works on every hob, induction included. ' : '') +
      (attributes.dishwasherSafe
        ? 'Dishwasher safe.'
        : 'Wash by hand and dry straight away; it will last for decades.'),
    attributes,
    tags,
  };
});

const garden = category('garden', (rng, type, { brands }) => {
  const brand = rng.pick(brands);
  const attributes: Attributes = {};
  let detail = '';
  switch (type.code) {
    case 'SHEARS':
      attributes.material = rng.pick(['carbon steel', 'stainless steel']);
      attributes.cuttingDiameterMm = rng.int(15, 25);
      attributes.leftHanded = rng.chance(0.15);
      detail = `cuts branches up to ${attributes.cuttingDiameterMm} mm`;
      break;
    case 'HOSE':
      attributes.material = rng.pick(['reinforced PVC', 'natural rubber', 'expandable latex']);
      attributes.lengthM = rng.pick([15, 20, 25, 30, 50]);
      attributes.innerDiameterMm = rng.pick([13, 19]);
      detail = `${attributes.lengthM} m long`;
      break;
    case 'CAN':
    case 'COMPOST':
      attributes.material =
        type.code === 'CAN'
          ? rng.pick(['galvanised steel', 'recycled plastic', 'copper'])
          : rng.pick(['recycled plastic', 'larch wood']);
      attributes.capacityLiters = type.code === 'CAN' ? rng.pick([5, 7, 10, 12]) : rng.pick([220, 300, 400, 600]);
      detail = `holds ${attributes.capacityLiters} l`;
      break;
    case 'BED':
      attributes.material = rng.pick(['larch wood', 'corten steel', 'galvanised steel']);
      attributes.dimensionsCm = rng.pick([
        [120, 60, 40],
        [180, 80, 60],
        [100, 100, 30],
        [200, 100, 80],
      ]);
      detail = `${(attributes.dimensionsCm as number[]).join(' x ')} cm`;
      break;
    case 'SEEDS':
      attributes.varieties = rng.some(
        ['tomato', 'basil', 'chilli', 'lettuce', 'radish', 'parsley', 'sunflower', 'courgette', 'sweet pea'],
        3,
        6,
      );
      attributes.organic = rng.chance(0.7);
      attributes.material = 'biodegradable coir pots';
      detail = `${(attributes.varieties as string[]).length} varieties`;
      break;
    case 'PLANTER':
      attributes.material = 'terracotta';
      attributes.diameterCm = rng.pick([14, 18, 24, 30, 40]);
      attributes.frostResistant = rng.chance(0.6);
      detail = `${attributes.diameterCm} cm across`;
      break;
    case 'GLOVES':
      attributes.material = rng.pick(['nitrile-coated knit', 'goatskin leather', 'bamboo knit']);
      attributes.sizes = rng.run(['S', 'M', 'L', 'XL'], 3);
      detail = `sizes ${(attributes.sizes as string[]).join(', ')}`;
      break;
    case 'LIGHTS':
      attributes.material = rng.pick(['stainless steel', 'recycled plastic']);
      attributes.powerSource = 'solar';
      attributes.lumens = rng.pick([10, 20, 50]);
      attributes.batteryLifeHours = rng.int(6, 12);
      attributes.ipRating = rng.pick(['IP44', 'IP65']);
      detail = `${attributes.lumens} lm each, up to ${attributes.batteryLifeHours} h a night`;
      break;
  }
  attributes.weatherproof = type.code !== 'SEEDS' && rng.chance(0.8);
  const bulky = type.code === 'BED' || type.code === 'COMPOST';
  attributes.weightKg = bulky ? rng.float(8, 45, 1) : rng.float(0.1, 3, 1);
  const tags = tagged({
    organic: attributes.organic === true,
    solar: attributes.powerSource === 'solar',
    'grow-your-own': type.code === 'BED' || type.code === 'SEEDS',
  });
  return {
    name: `${brand} ${type.noun}`,
    description:
      `${capitalize(type.noun)} from ${brand} in ${String(attributes.material)}: ${detail}. ` +
      `${attributes.weatherproof ? 'Made to stay outside all year. ' : ''}Weighs ${attributes.weightKg} kg.`,
    attributes,
    tags,
  };
});

const electronics = category('electronics', (rng, type, { brands }) => {
  const brand = rng.pick(brands);
  const model =
    `${rng.pick(['Aura', 'Pulse', 'Nova', 'Echo', 'Flux', 'Orbit', 'Vega', 'Arc'])} ` +
    `${rng.pick(['', 'Mini ', 'Pro ', 'Max ', 'Lite '])}${rng.int(1, 5)}`;
  const mains = '100-240 V AC';
  const attributes: Attributes = {
    color: rng.pick(['black', 'white', 'graphite', 'silver', 'midnight blue', 'sage']),
  };
  let detail = '';
  switch (type.code) {
    case 'HEADPH':
    case 'EARBUDS':
      attributes.connectivity = [
        'Bluetooth 5.3',
        'USB-C',
        ...(type.code === 'HEADPH' && rng.chance(0.6) ? ['3.5 mm jack'] : []),
      ];
      attributes.batteryLifeHours = type.code === 'HEADPH' ? rng.pick([20, 30, 40, 50, 60]) : rng.int(5, 10);
      attributes.noiseCancelling = rng.chance(0.6);
      attributes.wattage = 5;
      attributes.voltage = '5 V DC (USB-C)';
      attributes.codecs = rng.some(['SBC', 'AAC', 'aptX', 'aptX Adaptive', 'LDAC'], 2, 4);
      detail =
        `${attributes.batteryLifeHours} hours per ` +
        `charge${attributes.noiseCancelling ? ' and active noise cancelling' : ''}`;
      break;
    case 'SPEAKER': {
      const portable = rng.chance(0.7);
      attributes.connectivity = portable
        ? ['Bluetooth 5.3', 'USB-C']
        : ['Bluetooth 5.3', 'Wi-Fi', 'AirPlay 2', 'Ethernet'];
      attributes.wattage = portable ? rng.pick([10, 20, 30]) : rng.pick([40, 60, 100]);
      attributes.voltage = portable ? '5 V DC (USB-C)' : mains;
      if (portable) {
        attributes.batteryLifeHours = rng.int(10, 24);
        attributes.waterResistance = rng.pick(['IPX4', 'IP67']);
      }
      const battery = `, ${String(attributes.batteryLifeHours)} hours on battery`;
      detail = `${attributes.wattage} W of sound${portable ? battery : ' for the living room'}`;
      break;
    }
    case 'CHARGER':
      attributes.wattage = rng.pick([20, 30, 45, 65, 100, 140]);
      attributes.voltage = mains;
      attributes.ports = rng.pick([['USB-C'], ['USB-C', 'USB-C'], ['USB-C', 'USB-C', 'USB-A']]);
      attributes.connectivity = ['USB-C Power Delivery 3.1'];
      attributes.gan = rng.chance(0.7);
      attributes.plugType = 'EU (Type C/F)';
      detail = `${attributes.wattage} W over ${(attributes.ports as string[]).length} port(s), enough for a laptop`;
      break;
    case 'POWERBANK':
      attributes.capacityMah = rng.pick([5000, 10000, 20000, 26800]);
      attributes.wattage = rng.pick([18, 30, 65]);
      attributes.voltage = '5-20 V DC (USB-C PD)';
      attributes.connectivity = ['USB-C', 'USB-A'];
      detail = `${attributes.capacityMah} mAh, charges at up to ${attributes.wattage} W`;
      break;
    case 'PLUG':
      attributes.connectivity = rng.some(['Wi-Fi', 'Matter', 'Thread', 'Zigbee'], 1, 2);
      attributes.wattage = 3680;
      attributes.voltage = '230 V AC';
      attributes.energyMonitoring = rng.chance(0.7);
      attributes.plugType = 'EU (Type F)';
      detail = `switches up to ${attributes.wattage} W over ${listing(attributes.connectivity)}`;
      break;
    case 'LAMP':
      attributes.wattage = rng.int(6, 14);
      attributes.voltage = mains;
      attributes.colourTemperatureK = [2700, rng.pick([5000, 6500])];
      attributes.lumens = rng.pick([450, 600, 800, 1000]);
      attributes.connectivity = rng.chance(0.4) ? ['USB-C', 'Bluetooth 5.0'] : ['USB-C'];
      attributes.plugType = 'EU (Type C/F)';
      detail = `${attributes.lumens} lm from ${attributes.wattage} W, warm to daylight white`;
      break;
    case 'KEYBOARD':
      attributes.layout = rng.pick(['US ANSI', 'ISO DE', 'ISO UK', 'ISO Nordic', 'ISO ES', 'ISO FR']);
      attributes.switches = rng.pick(['tactile', 'linear', 'clicky']);
      attributes.connectivity = rng.chance(0.6) ? ['USB-C', 'Bluetooth 5.1', '2.4 GHz'] : ['USB-C'];
      attributes.hotSwappable = rng.chance(0.5);
      attributes.wattage = 1;
      attributes.voltage = '5 V DC (USB-C)';
      detail = `${attributes.layout} layout with ${attributes.switches} switches`;
      break;
    case 'WEBCAM':
      attributes.resolution = rng.pick(['1080p', '1440p', '4K']);
      attributes.fps = rng.pick([30, 60]);
      attributes.connectivity = ['USB-C'];
      attributes.wattage = 2;
      attributes.voltage = '5 V DC (USB-C)';
      attributes.privacyShutter = rng.chance(0.8);
      detail = `${attributes.resolution} at ${attributes.fps} fps`;
      break;
  }
  attributes.warrantyMonths = rng.pick([24, 24, 36]);
  const connectivity = (attributes.connectivity as string[] | undefined) ?? [];
  const tags = tagged({
    'usb-c': connectivity.some((c) => c.startsWith('USB-C')),
    bluetooth: connectivity.some((c) => c.startsWith('Bluetooth')),
    'smart-home': connectivity.includes('Matter') || type.code === 'PLUG',
    audio: type.code === 'HEADPH' || type.code === 'EARBUDS' || type.code === 'SPEAKER',
  });
  return {
    name: `${brand} ${model} ${type.noun}, ${String(attributes.color)}`,
    description:
      `${brand} ${model}: ${type.noun} with ${detail}. Connects over ${listing(connectivity)}; ` +
      `power ${String(attributes.voltage)}. ${attributes.warrantyMonths}-month warranty.`,
    attributes,
    tags,
  };
});

const books = category('books', (rng, type, { words }, index) => {
  const w = CATALOG.bookWords;
  const hooks: Record<string, string[]> = CATALOG.bookHooks;
  const title = forType(
    {
      FIC: () =>
        rng.pick([
          `The ${rng.pick(w.adjectives)} ${rng.pick(w.nouns)}`,
          `${rng.pick(w.nouns)} of ${rng.pick(w.nouns)}s`,
          `A ${rng.pick(w.nouns)} in Winter`,
        ]),
      CRIME: () =>
        rng.pick([
          `Death at the ${rng.pick(w.nouns)}`,
          `The ${rng.pick(w.nouns)} Murders`,
          `${rng.pick(w.adjectives)} Water`,
          `A ${rng.pick(w.adjectives)} Alibi`,
        ]),
      COOK: () =>
        rng.pick([
          `${rng.pick(w.cuisines)} at Home`,
          `The ${rng.pick(w.cuisines)} Kitchen`,
          `Simply ${rng.pick(w.cuisines)}`,
        ]),
      TRAVEL: () =>
        rng.pick([
          `${capitalize(rng.pick(w.regions))} by Rail`,
          `Walking ${rng.pick(w.regions)}`,
          `${rng.pick(w.cities)}: A Pocket Guide`,
        ]),
      SCI: () =>
        rng.pick([
          `The Secret Life of ${rng.pick(w.things)}`,
          `Why ${rng.pick(w.things)} Matter`,
          `A Short History of ${rng.pick(w.things)}`,
        ]),
      HIST: () =>
        rng.pick([
          `${rng.pick(w.subjects)}: A New History`,
          `The Year ${rng.int(1348, 1989)}`,
          `The Rise and Fall of ${rng.pick(w.subjects)}`,
        ]),
      KIDS: () =>
        rng.pick([
          `${rng.pick(w.animals)} Can't Sleep`,
          `The ${rng.pick(w.adjectives)} ${rng.pick(w.animals)}`,
          `Where Is ${rng.pick(w.animals)}?`,
        ]),
    },
    type,
  )();
  const author = `${rng.pick(w.authorsFirst)} ${rng.pick(w.authorsLast)}`;
  const format =
    type.code === 'KIDS'
      ? 'hardcover'
      : rng.weighted([
          ['paperback', 65],
          ['hardcover', 35],
        ] as const);
  const language = rng.weighted([
    ['en', 60],
    ['de', 14],
    ['fr', 9],
    ['nl', 9],
    ['es', 8],
  ] as const);
  const publisher = rng.pick(words.publishers);
  const pages = type.code === 'KIDS' ? rng.int(24, 48) : type.code === 'COOK' ? rng.int(192, 352) : rng.int(180, 620);
  const publishedYear = rng.weighted([
    [rng.int(2021, 2026), 6],
    [rng.int(2010, 2020), 3],
    [rng.int(1985, 2009), 1],
  ] as const);
  const attributes: Attributes = {
    author,
    isbn: isbn13(index),
    pages,
    format,
    language,
    publisher,
    publishedYear,
    genre: type.noun.replace(' book', ''),
  };
  if (type.code === 'KIDS') attributes.ageRange = rng.pick(['2-4', '3-5', '4-7']);
  const tags = [
    slug(type.code === 'KIDS' ? 'children' : type.code === 'FIC' ? 'fiction' : String(attributes.genre)),
    ...tagged({ hardcover: format === 'hardcover', 'new-release': publishedYear >= 2026 }),
  ];
  return {
    name: title,
    description:
      `${rng.pick(forType(hooks, type))}. A ${type.noun} by ${author}; ` +
      `${pages} pages, ${format}, published by ${publisher} in ${publishedYear}.`,
    attributes,
    tags,
  };
});

const toys = category('toys', (rng, type, { words, brands }) => {
  const brand = rng.pick(brands);
  const attributes: Attributes = {};
  let name = `${brand} ${type.noun}`;
  switch (type.code) {
    case 'BLOCKS':
      attributes.pieces = rng.int(10, 150) * 10;
      attributes.material = rng.pick(['ABS plastic', 'plant-based plastic']);
      attributes.ageMin = rng.int(4, 9);
      attributes.theme = rng.pick(['harbour', 'space station', 'castle', 'city tram', 'farm']);
      name = `${brand} ${attributes.theme} ${type.noun}, ${attributes.pieces} pieces`;
      break;
    case 'TRAIN':
      attributes.pieces = rng.int(20, 80);
      attributes.material = 'beech wood';
      attributes.ageMin = 3;
      break;
    case 'PLUSH': {
      const animal = rng.pick(['bear', 'fox', 'rabbit', 'sloth', 'whale', 'hedgehog']);
      attributes.material = 'recycled polyester';
      attributes.heightCm = rng.pick([20, 25, 30, 40, 50]);
      attributes.ageMin = 0;
      attributes.machineWashable = true;
      name = `${brand} plush ${animal}, ${attributes.heightCm} cm`;
      break;
    }
    case 'PUZZLE': {
      const pieces = rng.pick([500, 1000, 1500, 2000]);
      attributes.pieces = pieces;
      attributes.material = 'recycled cardboard';
      attributes.ageMin = rng.pick([10, 12]);
      attributes.dimensionsCm = pieces >= 1500 ? [98, 68] : [68, 48];
      const motif = rng.pick(words.motifs);
      name = `${brand} ${pieces}-piece puzzle: ${motif}`;
      break;
    }
    case 'GAME': {
      const min = rng.int(1, 2);
      attributes.players = [min, rng.int(Math.max(min + 1, 3), 6)];
      attributes.playTimeMinutes = rng.pick([20, 30, 45, 60, 90]);
      attributes.ageMin = rng.int(7, 12);
      attributes.material = 'cardboard and wood';
      attributes.languages = rng.some(['en', 'de', 'fr', 'nl', 'es', 'it'], 1, 4);
      const title = rng.pick([
        'Harbour Masters',
        'Spice Route',
        'Lantern Lake',
        'Tiny Towns Express',
        'Kraken Bay',
        'Meadow Market',
      ]);
      name = `${title} board game`;
      break;
    }
    case 'KITE':
      attributes.spanCm = rng.pick([120, 140, 160, 180]);
      attributes.material = 'ripstop nylon and carbon rods';
      attributes.ageMin = 8;
      break;
    case 'SCIENCE':
      attributes.experiments = rng.pick([12, 20, 30, 50]);
      attributes.subject = rng.pick(['crystals', 'electricity', 'chemistry', 'robotics', 'volcanoes']);
      attributes.material = 'mixed';
      attributes.ageMin = rng.int(8, 12);
      name = `${brand} ${attributes.subject} ${type.noun}`;
      break;
    case 'DOLLHOUSE':
      attributes.rooms = rng.int(4, 8);
      attributes.material = 'birch plywood';
      attributes.ageMin = 3;
      attributes.dimensionsCm = [rng.int(50, 80), rng.int(30, 40), rng.int(60, 100)];
      break;
  }
  attributes.batteriesRequired = type.code === 'SCIENCE' && attributes.subject !== 'crystals';
  attributes.safetyMark = 'CE';
  const tags = tagged({
    educational: type.code === 'SCIENCE' || type.code === 'PUZZLE',
    outdoor: type.code === 'KITE',
    toddler: Number(attributes.ageMin) <= 3,
  });
  const pieces = attributes.pieces !== undefined ? ` with ${String(attributes.pieces)} pieces` : '';
  const players = Array.isArray(attributes.players)
    ? `, ${attributes.players.join('-')} players, about ${String(attributes.playTimeMinutes)} minutes a game`
    : '';
  return {
    name,
    description:
      `${capitalize(type.noun)} by ${brand}${pieces}, made of ${String(attributes.material)}. ` +
      `For ages ${String(attributes.ageMin)}+${players}. ` +
      (attributes.batteriesRequired ? 'Needs 2 AA batteries (not included).' : 'No batteries needed.'),
    attributes,
    tags,
  };
});

const beauty = category('beauty', (rng, type, { words, brands }) => {
  const brand = rng.pick(brands);
  const variant = rng.pick(words.variants);
  const ingredients = words.ingredients;
  const attributes: Attributes = {};
  if (type.code === 'BAR' || type.code === 'LIPBALM')
    attributes.weightGrams = type.code === 'BAR' ? rng.pick([60, 80, 100]) : 5;
  else
    attributes.volumeMl = rng.pick(
      forType(
        {
          CREAM: [30, 50],
          SERUM: [15, 30],
          SPF: [50, 100, 200],
          SHAMPOO: [250, 300, 500],
          LOTION: [200, 250, 400],
          SOAP: [250, 300, 500],
        },
        type,
      ),
    );
  if (type.code === 'SHAMPOO' || type.code === 'BAR')
    attributes.hairType = rng.some(['fine', 'normal', 'curly', 'dry', 'oily'], 1, 3);
  else attributes.skinType = rng.some(['dry', 'normal', 'combination', 'oily', 'sensitive'], 1, 4);
  attributes.keyIngredients =
    type.code === 'SPF' ? ['zinc oxide', ...rng.some(ingredients, 1, 2)] : rng.some(ingredients, 2, 4);
  if (type.code === 'SPF') attributes.spf = rng.pick([30, 50]);
  attributes.vegan = rng.chance(0.7);
  attributes.crueltyFree = true;
  attributes.fragranceFree = rng.chance(0.4);
  if (type.code === 'SOAP') attributes.refillAvailable = rng.chance(0.6);
  const size =
    attributes.volumeMl !== undefined ? `${String(attributes.volumeMl)} ml` : `${String(attributes.weightGrams)} g`;
  const tags = [
    type.code === 'SHAMPOO' || type.code === 'BAR' ? 'haircare' : 'skincare',
    ...tagged({
      vegan: attributes.vegan,
      'fragrance-free': attributes.fragranceFree,
      'zero-waste': type.code === 'BAR',
      summer: type.code === 'SPF',
    }),
  ];
  const noun = type.noun.split(' ').map(capitalize).join(' ');
  const spf = type.code === 'SPF' ? ` SPF ${String(attributes.spf)}` : '';
  return {
    name: `${brand} ${variant} ${noun}${spf}, ${size}`,
    description:
      `${variant} ${type.noun} with ${listing(attributes.keyIngredients)}. ` +
      (attributes.skinType !== undefined
        ? `Suits ${listing(attributes.skinType as string[])} skin`
        : `For ${listing(attributes.hairType as string[])} hair`) +
      `${attributes.fragranceFree ? ', fragrance free' : ''}${attributes.vegan ? ', vegan' : ''}. ${size}, made ` +
      `in the EU.`,
    attributes,
    tags,
  };
});

export const CATEGORIES: readonly Category[] = [apparel, footwear, kitchen, garden, electronics, books, toys, beauty];

const CATEGORY_WEIGHTS = CATEGORIES.map((category) => [category, category.weight] as const);

/**
 * The product at a catalog position. `identity` decides what the product is (category, type,
 * status: the SKU and whether it is stocked); `rng` everything else.
 */
export function productFields(index: number, identity: Random, rng: Random): ProductFields {
  const category = identity.weighted(CATEGORY_WEIGHTS);
  const type = identity.pick(category.types);
  const status = identity.weighted([
    ['active', 84],
    ['draft', 10],
    ['archived', 6],
  ] as const);

  const built = category.build(rng, type, index);
  const tags = new Set(built.tags);
  for (const tag of rng.some(category.tags, 0, 3)) tags.add(tag);
  const gtin = category.slug === 'books' ? String(built.attributes.isbn) : rng.chance(0.55) ? ean13(index) : undefined;
  return {
    sku: `${category.prefix}-${type.code}-${String(index + 1).padStart(5, '0')}`,
    name: built.name,
    description: built.description,
    ...(gtin !== undefined ? { gtin } : {}),
    price: price(rng, type.price),
    category: category.slug,
    tags: [...tags].slice(0, 20),
    attributes: built.attributes,
    status,
  };
}
