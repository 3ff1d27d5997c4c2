#!/usr/bin/env node
import { runOttoCommand } from "@otto/sdk/cli";

runOttoCommand(process.argv.slice(2));
