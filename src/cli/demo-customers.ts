// The demo customers of `npm run seed`: names, addresses, postcodes and phone numbers as they
// look in twelve European countries, built from a PRNG stream per customer. What varies by country
// is data, in demo/customers.json: first names, surnames (Polish ones that do not change with
// gender, so any first name fits), streets, second address lines, cities with the pattern of
// their postcodes, and the pattern of a phone number. How a pattern is read, and how a house
// number joins a street, is here.

import type { Static } from 'typebox';
import type { Customer } from '../domain/entities/index.ts';
import COUNTRY_FILE from './demo/customers.json' with { type: 'json' };
import type { Random } from './seeded-random.ts';

export type CustomerFields = Static<typeof Customer.writable>;
type Address = CustomerFields['addresses'][number];

interface City {
  city: string;
  region?: string;
  postalCode(rng: Random): string;
}

interface Country {
  code: string;
  weight: number;
  first: readonly string[];
  last: readonly string[];
  /** Spanish customers carry two surnames. */
  doubleSurname?: boolean;
  cities: readonly City[];
  streets: readonly string[];
  street(rng: Random, name: string): string;
  line2: readonly string[];
  phone(rng: Random): string;
}

/** A country as demo/customers.json has it: its postcodes and phone numbers are patterns. */
interface CountryEntry extends Omit<Country, 'code' | 'cities' | 'street' | 'phone'> {
  houseNumber: string;
  phone: string;
  cities: readonly { city: string; region?: string; postalCode: string }[];
}

const HOUSE_NUMBERS: Readonly<Record<string, (rng: Random, street: string) => string>> = {
  after: (rng, street) => `${street} ${rng.int(1, 180)}`,
  before: (rng, street) => `${rng.int(1, 240)} ${street}`,
  comma: (rng, street) => `${street}, ${rng.int(1, 150)}`,
};

/**
 * A postcode or phone number pattern: text, with in braces `04103-04357` for a number in that
 * range written as wide as its bounds, `###` for as many digits, `2 of ABC` for as many letters
 * from those, and `M1|M4` for one of those. Read once, so a pattern the reader does not know fails
 * when the module loads, not on the first customer that uses it.
 */
function pattern(text: string): (rng: Random) => string {
  const parts = text.split(/\{([^}]*)\}/).map((part, i): ((rng: Random) => string) | string => {
    if (i % 2 === 0) return part;
    const range = /^(\d+)-(\d+)$/.exec(part);
    if (range?.[1] !== undefined && range[2] !== undefined) {
      const [width, from, to] = [range[1].length, Number(range[1]), Number(range[2])];
      return (rng) => String(rng.int(from, to)).padStart(width, '0');
    }
    if (/^#+$/.test(part)) return (rng) => rng.digits(part.length);
    const letters = /^(\d+) of (\S+)$/.exec(part);
    if (letters?.[1] !== undefined && letters[2] !== undefined) {
      const [count, alphabet] = [Number(letters[1]), letters[2]];
      return (rng) => rng.letters(count, alphabet);
    }
    const choices = part.split('|');
    if (choices.length > 1) return (rng) => rng.pick(choices);
    throw new Error(`demo pattern ${text}: {${part}} is none of {from-to}, {###}, {n of letters}, {a|b}`);
  });
  return (rng) => parts.map((part) => (typeof part === 'string' ? part : part(rng))).join('');
}

const ENTRIES: Readonly<Record<string, CountryEntry>> = COUNTRY_FILE;

const COUNTRIES: readonly Country[] = Object.entries(ENTRIES).map(([code, entry]) => {
  const street = HOUSE_NUMBERS[entry.houseNumber];
  if (street === undefined) throw new Error(`demo country ${code}: no house number style ${entry.houseNumber}`);
  return {
    ...entry,
    code,
    cities: entry.cities.map((city) => ({ ...city, postalCode: pattern(city.postalCode) })),
    street,
    phone: pattern(entry.phone),
  };
});

const EMAIL_DOMAINS = [
  ['example.com', 5],
  ['example.net', 3],
  ['example.org', 2],
] as const;

function address(rng: Random, country: Country, label: string | undefined): Address {
  const city = rng.pick(country.cities);
  return {
    ...(label !== undefined ? { label } : {}),
    line1: country.street(rng, rng.pick(country.streets)),
    ...(rng.chance(0.2) ? { line2: rng.pick(country.line2) } : {}),
    city: city.city,
    ...(city.region !== undefined ? { region: city.region } : {}),
    postalCode: city.postalCode(rng),
    country: country.code,
  };
}

const FOLDS: Record<string, string> = { ß: 'ss', ø: 'o', Ø: 'O', æ: 'ae', Æ: 'AE', ł: 'l', Ł: 'L', œ: 'oe', đ: 'd' };
const emailName = (text: string) =>
  text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[ßøØæÆłŁœđ]/g, (c) => FOLDS[c] ?? c)
    .toLowerCase()
    .replace(/[^a-z]/g, '');

const COUNTRY_WEIGHTS = COUNTRIES.map((country) => [country, country.weight] as const);

/**
 * The customer at a position. `identity` decides who it is (country, name, e-mail); `rng` the
 * rest. The e-mail ends in the position, so it is unique whatever names the lists repeat.
 */
export function customerFields(index: number, identity: Random, rng: Random): CustomerFields {
  const country = identity.weighted(COUNTRY_WEIGHTS);
  const first = identity.pick(country.first);
  const surname = identity.pick(country.last);
  const last = country.doubleSurname
    ? `${surname} ${identity.pick(country.last.filter((name) => name !== surname))}`
    : surname;
  const f = emailName(first);
  const l = emailName(surname);
  const local = identity.weighted([
    [`${f}.${l}`, 5],
    [`${f}${l}`, 2],
    [`${f.charAt(0)}.${l}`, 2],
    [`${f}_${l}`, 1],
    [`${l}.${f}`, 1],
  ] as const);
  const email = `${local}${index + 1}@${identity.weighted(EMAIL_DOMAINS)}`;

  const addresses: Address[] = [address(rng, country, rng.chance(0.6) ? 'home' : undefined)];
  if (rng.chance(0.3)) {
    const abroad = rng.chance(0.35);
    addresses.push(
      address(
        rng,
        abroad ? rng.weighted(COUNTRY_WEIGHTS) : country,
        abroad ? rng.pick(['holiday home', 'parents']) : 'work',
      ),
    );
  }
  return {
    email,
    name: `${first} ${last}`,
    ...(rng.chance(0.6) ? { phone: country.phone(rng) } : {}),
    addresses,
    marketingOptIn: rng.chance(0.35),
  };
}
