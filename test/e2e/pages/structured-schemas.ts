// Zod schemas shared by the structured-output e2e tests and the pages they drive.
import { z } from 'zod';

export const Person = z.object({
  name: z.string().min(1).max(12),
  age: z.number().int().min(0).max(120),
  side: z.enum(['French', 'Russian']),
  alive: z.boolean(),
});

export const Weather = z.object({ city: z.string().max(16), unit: z.enum(['celsius', 'fahrenheit']), days: z.number().int().min(1).max(7) });
