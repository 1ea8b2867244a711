export const mixed = 1;
