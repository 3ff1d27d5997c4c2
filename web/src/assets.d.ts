// Styles imported for their effect: esbuild emits them as the bundle's CSS file.
declare module "*.css" {}
