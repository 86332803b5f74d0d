#!/usr/bin/env node
// The `sheesh` command: runs the TypeScript sources with Node's type stripping (Node >= 22.6;
// this repository pins Node 24 in node_modules).
import '../src/main.ts'
