/** fast-check arbitraries shared by the property tests of change rows (snapshot files, column statistics). */
import fc from "fast-check"

/** Any instant from year 1 to year 9999, to the millisecond. */
export const anyDate = fc.date({ min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59.999Z"), noInvalidDate: true })

/** The arbitraries of a change row's time and AVU columns, with `text` for every free text among them. */
export const avuFields = (text: fc.Arbitrary<string>) => ({
  ts: anyDate,
  targetType: fc.constantFrom("data_object" as const, "collection" as const),
  objectId: fc.option(fc.integer({ min: 1, max: 2 ** 50 }), { nil: null }),
  attribute: text,
  value: text,
  unit: text,
  op: fc.constantFrom("add" as const, "delete" as const),
  actor: text,
  viaTicket: fc.option(text, { nil: null })
})
