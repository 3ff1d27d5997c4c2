#!/usr/bin/env node
// otto-agent: the agent, as compiled into this package (dist/).
import "../dist/otto-agent.mjs";
