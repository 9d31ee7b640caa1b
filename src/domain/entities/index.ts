// Every document collection the API serves, in the order the OpenAPI document lists them.

import { Customer } from './customer.ts';
import { Order } from './order.ts';
import { Product } from './product.ts';
import { Stock } from './stock.ts';

export { Customer, Order, Product, Stock };
export const ENTITIES = [Product, Customer, Stock, Order] as const;
