// The demo customers of `npm run seed`: names, addresses, postcodes and phone numbers as they
// look in twelve European countries, built from a PRNG stream per customer. The words (first names,
// surnames, streets, second address lines) are data, in demo/customers.json; what is built from
// them (postcodes, house numbers, phone numbers) is here.

import type { Static } from 'typebox';
import type { Customer } from '../domain/entities/index.ts';
import NAMES from './demo/customers.json' with { type: 'json' };
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

const numberAfter = (rng: Random, street: string) => `${street} ${rng.int(1, 180)}`;
const numberBefore = (rng: Random, street: string) => `${rng.int(1, 240)} ${street}`;
const commaNumber = (rng: Random, street: string) => `${street}, ${rng.int(1, 150)}`;
const within = (from: number, to: number, width: number) => (rng: Random) =>
  String(rng.int(from, to)).padStart(width, '0');
const fixed = (city: string, postalCode: (rng: Random) => string, region?: string): City => ({
  city,
  postalCode,
  ...(region ? { region } : {}),
});
const ukPostcode = (outward: readonly string[]) => (rng: Random) =>
  `${rng.pick(outward)} ${rng.int(1, 9)}${rng.letters(2, 'ABDEFGHJLNPQRSTUWXYZ')}`;

const COUNTRIES: readonly Country[] = [
  {
    code: 'NL',
    ...NAMES.NL,
    weight: 18,
    cities: [
      fixed('Amsterdam', (rng) => `10${rng.digits(2)} ${rng.letters(2, 'ABCDEGHJKLMNPRSTVWXZ')}`),
      fixed('Rotterdam', (rng) => `30${rng.digits(2)} ${rng.letters(2, 'ABCDEGHJKLMNPRSTVWXZ')}`),
      fixed('Utrecht', (rng) => `35${rng.digits(2)} ${rng.letters(2, 'ABCDEGHJKLMNPRSTVWXZ')}`),
      fixed('Den Haag', (rng) => `25${rng.digits(2)} ${rng.letters(2, 'ABCDEGHJKLMNPRSTVWXZ')}`),
      fixed('Eindhoven', (rng) => `56${rng.digits(2)} ${rng.letters(2, 'ABCDEGHJKLMNPRSTVWXZ')}`),
      fixed('Groningen', (rng) => `97${rng.digits(2)} ${rng.letters(2, 'ABCDEGHJKLMNPRSTVWXZ')}`),
    ],
    street: numberAfter,
    phone: (rng) => `+316${rng.digits(8)}`,
  },
  {
    code: 'DE',
    ...NAMES.DE,
    weight: 20,
    cities: [
      fixed('Berlin', within(10115, 14199, 5)),
      fixed('Hamburg', within(20095, 22769, 5)),
      fixed('München', within(80331, 81929, 5)),
      fixed('Köln', within(50667, 51149, 5)),
      fixed('Frankfurt am Main', within(60306, 60599, 5)),
      fixed('Leipzig', within(4103, 4357, 5)),
      fixed('Dresden', within(1067, 1328, 5)),
    ],
    street: numberAfter,
    phone: (rng) => `+49${rng.pick(['151', '160', '170', '176'])}${rng.digits(8)}`,
  },
  {
    code: 'BE',
    ...NAMES.BE,
    weight: 8,
    cities: [
      fixed('Brussel', within(1000, 1210, 4)),
      fixed('Antwerpen', within(2000, 2660, 4)),
      fixed('Gent', within(9000, 9052, 4)),
      fixed('Leuven', within(3000, 3012, 4)),
      fixed('Liège', within(4000, 4032, 4)),
    ],
    street: numberAfter,
    phone: (rng) => `+3247${rng.digits(7)}`,
  },
  {
    code: 'FR',
    ...NAMES.FR,
    weight: 12,
    cities: [
      fixed('Paris', (rng) => `750${String(rng.int(1, 20)).padStart(2, '0')}`),
      fixed('Lyon', (rng) => `6900${rng.int(1, 9)}`),
      fixed('Marseille', (rng) => `130${String(rng.int(1, 16)).padStart(2, '0')}`),
      fixed('Toulouse', (rng) => rng.pick(['31000', '31100', '31200', '31300', '31400', '31500'])),
      fixed('Bordeaux', (rng) => rng.pick(['33000', '33100', '33200', '33300', '33800'])),
      fixed('Lille', (rng) => rng.pick(['59000', '59160', '59260', '59777', '59800'])),
      fixed('Nantes', (rng) => rng.pick(['44000', '44100', '44200', '44300'])),
    ],
    street: numberBefore,
    phone: (rng) => `+33${rng.pick(['6', '7'])}${rng.digits(8)}`,
  },
  {
    code: 'ES',
    ...NAMES.ES,
    weight: 10,
    doubleSurname: true,
    cities: [
      fixed('Madrid', within(28001, 28055, 5), 'Madrid'),
      fixed('Barcelona', within(8001, 8042, 5), 'Barcelona'),
      fixed('Valencia', within(46001, 46026, 5), 'Valencia'),
      fixed('Sevilla', within(41001, 41020, 5), 'Sevilla'),
      fixed('Bilbao', within(48001, 48015, 5), 'Bizkaia'),
      fixed('Málaga', within(29001, 29018, 5), 'Málaga'),
    ],
    street: commaNumber,
    phone: (rng) => `+346${rng.digits(8)}`,
  },
  {
    code: 'IT',
    ...NAMES.IT,
    weight: 8,
    cities: [
      fixed('Milano', within(20121, 20162, 5), 'MI'),
      fixed('Roma', within(118, 199, 5), 'RM'),
      fixed('Torino', within(10121, 10156, 5), 'TO'),
      fixed('Bologna', within(40121, 40141, 5), 'BO'),
      fixed('Firenze', within(50121, 50145, 5), 'FI'),
      fixed('Napoli', within(80121, 80147, 5), 'NA'),
    ],
    street: commaNumber,
    phone: (rng) => `+393${rng.digits(9)}`,
  },
  {
    code: 'AT',
    ...NAMES.AT,
    weight: 5,
    cities: [
      fixed('Wien', (rng) => `1${String(rng.int(1, 23)).padStart(2, '0')}0`),
      fixed('Graz', within(8010, 8055, 4)),
      fixed('Linz', within(4020, 4040, 4)),
      fixed('Salzburg', within(5020, 5026, 4)),
      fixed('Innsbruck', within(6020, 6080, 4)),
    ],
    street: numberAfter,
    phone: (rng) => `+43${rng.pick(['664', '650', '676', '699'])}${rng.digits(7)}`,
  },
  {
    code: 'GB',
    ...NAMES.GB,
    weight: 7,
    cities: [
      fixed('London', ukPostcode(['SW1A', 'E1', 'N1', 'SE1', 'W1T', 'EC1V', 'NW3', 'E8']), 'Greater London'),
      fixed('Manchester', ukPostcode(['M1', 'M4', 'M14', 'M20']), 'Greater Manchester'),
      fixed('Edinburgh', ukPostcode(['EH1', 'EH3', 'EH6', 'EH10'])),
      fixed('Bristol', ukPostcode(['BS1', 'BS6', 'BS8'])),
      fixed('Leeds', ukPostcode(['LS1', 'LS6', 'LS8']), 'West Yorkshire'),
      fixed('Cardiff', ukPostcode(['CF10', 'CF11', 'CF24'])),
    ],
    street: numberBefore,
    phone: (rng) => `+447${rng.digits(9)}`,
  },
  {
    code: 'IE',
    ...NAMES.IE,
    weight: 3,
    cities: [
      fixed(
        'Dublin',
        (rng) => `${rng.pick(['D02', 'D04', 'D06', 'D08', 'D24'])} ${rng.letters(4, 'ACDEFHKNPRTVWXY0123456789')}`,
        'County Dublin',
      ),
      fixed(
        'Cork',
        (rng) => `${rng.pick(['T12', 'T23'])} ${rng.letters(4, 'ACDEFHKNPRTVWXY0123456789')}`,
        'County Cork',
      ),
      fixed('Galway', (rng) => `H91 ${rng.letters(4, 'ACDEFHKNPRTVWXY0123456789')}`, 'County Galway'),
      fixed('Limerick', (rng) => `V94 ${rng.letters(4, 'ACDEFHKNPRTVWXY0123456789')}`, 'County Limerick'),
    ],
    street: numberBefore,
    phone: (rng) => `+3538${rng.pick(['3', '5', '6', '7', '9'])}${rng.digits(7)}`,
  },
  {
    code: 'PL',
    ...NAMES.PL,
    weight: 4,
    // Surnames that do not change with gender, so any first name fits.
    cities: [
      fixed('Warszawa', (rng) => `0${rng.int(0, 4)}-${rng.digits(3)}`),
      fixed('Kraków', (rng) => `3${rng.int(0, 1)}-${rng.digits(3)}`),
      fixed('Wrocław', (rng) => `5${rng.pick(['0', '1', '3', '4'])}-${rng.digits(3)}`),
      fixed('Gdańsk', (rng) => `80-${rng.digits(3)}`),
      fixed('Poznań', (rng) => `6${rng.int(0, 1)}-${rng.digits(3)}`),
    ],
    street: numberAfter,
    phone: (rng) => `+48${rng.pick(['5', '6', '7', '8'])}${rng.digits(8)}`,
  },
  {
    code: 'SE',
    ...NAMES.SE,
    weight: 3,
    cities: [
      fixed('Stockholm', (rng) => `11${rng.int(1, 8)} ${rng.digits(2)}`),
      fixed('Göteborg', (rng) => `41${rng.int(1, 8)} ${rng.digits(2)}`),
      fixed('Malmö', (rng) => `21${rng.int(1, 7)} ${rng.digits(2)}`),
      fixed('Uppsala', (rng) => `75${rng.int(1, 4)} ${rng.digits(2)}`),
    ],
    street: numberAfter,
    phone: (rng) => `+467${rng.pick(['0', '2', '3', '6'])}${rng.digits(7)}`,
  },
  {
    code: 'DK',
    ...NAMES.DK,
    weight: 2,
    cities: [
      fixed('København K', within(1050, 1473, 4)),
      fixed('København N', () => '2200'),
      fixed('Aarhus C', () => '8000'),
      fixed('Odense C', () => '5000'),
      fixed('Aalborg', () => '9000'),
    ],
    street: numberAfter,
    phone: (rng) => `+45${rng.int(2, 9)}${rng.digits(7)}`,
  },
];

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
