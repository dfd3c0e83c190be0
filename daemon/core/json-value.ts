// A shadow entry's value: what JSON can hold, so the store keeps it as text
// and gives it back unchanged, whatever the class put in it.
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
