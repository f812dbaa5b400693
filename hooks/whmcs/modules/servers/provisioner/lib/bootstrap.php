<?php
/** Loads the module's classes (provisioner.php, hooks.php and callback.php share them). */

require_once __DIR__ . '/ModuleLog.php';
require_once __DIR__ . '/Lang.php';
require_once __DIR__ . '/Connection.php';
require_once __DIR__ . '/EventBuilder.php';
require_once __DIR__ . '/Store.php';
require_once __DIR__ . '/WhmcsData.php';
require_once __DIR__ . '/Commands.php';
require_once __DIR__ . '/BillingEdits.php';
require_once __DIR__ . '/Outcomes.php';
require_once __DIR__ . '/Callback.php';
require_once __DIR__ . '/Panels.php';
require_once __DIR__ . '/Sync.php';
require_once __DIR__ . '/Checkout.php';
require_once __DIR__ . '/Options.php';
require_once __DIR__ . '/Metrics.php';
