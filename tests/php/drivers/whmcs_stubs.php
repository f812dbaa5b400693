<?php
/**
 * Stand-ins for WHMCS's own functions and classes, and nothing else: the module under
 * test runs unchanged. Each PHP process is one WHMCS request; state that WHMCS keeps in
 * its database (the module's tables, tblhosting) lives in a JSON file shared between
 * the processes of one test.
 *
 *   logModuleCall   appends one JSON line per call to $WHMCS_STUB['log_file'];
 *                   $replaceVars is recorded only as SHA-256 digests
 *   logActivity     appends to $WHMCS_STUB['activity_file']
 *   localAPI        records each call in $WHMCS_STUB['localapi_file'] and answers as
 *                   $WHMCS_STUB['localapi'] says ("success", "error"; "missing": not defined);
 *                   with "success", ModuleCreate runs the module's CreateAccount with the
 *                   service's parameters and makes the service Active on "success", as
 *                   WHMCS does; UpdateClientProduct writes tblhosting
 *   add_hook        registers hooks.php's callbacks (whmcs_stub_run_hook runs them)
 *   WHMCS\Module\Server   loadByServiceID()/buildParams() from the stub_module_params table
 *   Menu, WHMCS\View\Menu\Item   the sidebar context and a menu that records its children
 *   WHMCS\UsageBilling\*  the usage metrics classes a MetricProvider uses
 *   encrypt/decrypt a reversible stand-in for WHMCS's own encryption
 *   WHMCS\Database\Capsule  table()/schema() over the JSON file, recording every write
 *   WHMCS\Service\Status    the status constants of WHMCS 8
 */

namespace {
    define('WHMCS', true);

    function whmcs_stub_append(string $file, array $record): void
    {
        file_put_contents($file, json_encode($record, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
                | JSON_INVALID_UTF8_SUBSTITUTE) . "\n", FILE_APPEND | LOCK_EX);
    }

    function logModuleCall($module, $action, $requestString, $responseData, $processedData, $replaceVars = [])
    {
        global $WHMCS_STUB;
        whmcs_stub_append($WHMCS_STUB['log_file'], [
            'module' => $module,
            'action' => $action,
            'request' => $requestString,
            'response' => $responseData,
            'processed' => $processedData,
            'replaceVars_sha256' => array_map(static fn ($v) => hash('sha256', (string) $v), (array) $replaceVars),
        ]);
    }

    function logActivity($message, $userId = 0)
    {
        global $WHMCS_STUB;
        whmcs_stub_append($WHMCS_STUB['activity_file'], ['message' => $message]);
    }

    function encrypt($string)
    {
        return 'whmcs-encrypted:' . base64_encode(strrev((string) $string));
    }

    function decrypt($string)
    {
        return strrev((string) base64_decode(substr((string) $string, strlen('whmcs-encrypted:'))));
    }

    if (($GLOBALS['WHMCS_STUB']['localapi'] ?? 'success') !== 'missing') {
        function localAPI($command, $values = [], $adminUser = null)
        {
            global $WHMCS_STUB;
            whmcs_stub_append($WHMCS_STUB['localapi_file'], ['command' => $command, 'values' => $values]);
            if ($WHMCS_STUB['localapi'] === 'error') {
                return ['result' => 'error', 'message' => 'Service ID Not Found'];
            }
            $serviceId = (int) ($values['serviceid'] ?? 0);
            if ($command === 'ModuleCreate') {
                if (!function_exists('provisioner_CreateAccount')) {
                    require_once $WHMCS_STUB['module'];      // WHMCS loads the module for the call
                }
                $params = whmcs_stub_service_params($serviceId);
                if ($params === null) {
                    return ['result' => 'error', 'message' => 'Service ID not found'];
                }
                $result = provisioner_CreateAccount($params);
                whmcs_stub_after_command('CreateAccount', $params, $result);
                return $result === 'success' ? ['result' => 'success']
                    : ['result' => 'error', 'message' => (string) $result];
            }
            if ($command === 'UpdateClientProduct') {
                $fields = [];
                foreach (['servicepassword' => 'password', 'serviceusername' => 'username', 'status' => 'domainstatus']
                         as $field => $column) {
                    if (isset($values[$field])) {
                        $fields[$column] = $field === 'servicepassword' ? encrypt($values[$field]) : $values[$field];
                    }
                }
                if ($fields) {
                    \WHMCS\Database\Capsule::table('tblhosting')->where('id', $serviceId)->update($fields);
                }
            }
            return ['result' => 'success', 'serviceid' => $values['serviceid'] ?? null];
        }
    }

    /** What WHMCS does with a module command's result: the service's status, the password kept or restored. */
    function whmcs_stub_after_command(string $function, array $params, $result): void
    {
        $serviceId = (int) ($params['serviceid'] ?? 0);
        $row = \WHMCS\Database\Capsule::table('tblhosting')->where('id', $serviceId)->first();
        if ($row === null) {
            return;
        }
        $success = $result === 'success';
        $status = ['CreateAccount' => 'Active', 'SuspendAccount' => 'Suspended', 'UnsuspendAccount' => 'Active',
            'TerminateAccount' => 'Terminated'][$function] ?? null;
        $changes = [];
        if ($success && $status !== null) {
            $changes['domainstatus'] = $status;
        }
        if ($function === 'ChangePassword') {
            // WHMCS saved the new password before the call and restores the old one on failure.
            $changes['password'] = $success ? encrypt((string) ($params['password'] ?? '')) : $row->password;
        }
        if ($changes) {
            \WHMCS\Database\Capsule::table('tblhosting')->where('id', $serviceId)->update($changes);
        }
        whmcs_stub_append($GLOBALS['WHMCS_STUB']['activity_file'], ['message' => sprintf('Module %s %s - Service ID: %d',
            $function, $success ? 'Successful' : 'Failed', $serviceId)]);
    }

    /** The module parameters WHMCS would build for a service (stub_module_params), with the row's current values. */
    function whmcs_stub_service_params(int $serviceId): ?array
    {
        $stored = \WHMCS\Database\Capsule::table('stub_module_params')->where('id', $serviceId)->first();
        if ($stored === null) {
            return null;
        }
        $params = json_decode((string) $stored->params, true);
        $row = \WHMCS\Database\Capsule::table('tblhosting')->where('id', $serviceId)->first();
        if ($row !== null) {
            $params['domain'] = (string) ($row->domain ?? $params['domain']);
            $params['status'] = (string) ($row->domainstatus ?? $params['status']);
            $params['password'] = decrypt((string) ($row->password ?? encrypt($params['password'] ?? '')));
            $attributes = (array) ($stored->model ?? []);
            foreach (['nextduedate', 'billingcycle', 'overideautosuspend', 'overidesuspenduntil'] as $column) {
                if (isset($row->{$column})) {
                    $attributes[$column] = $row->{$column};
                }
            }
            $params['model'] = new WhmcsStubModel($attributes);
        }
        return $params;
    }

    /** @var array<string, list<callable>> */
    $GLOBALS['WHMCS_STUB_HOOKS'] = [];

    function add_hook($name, $priority, $callback)
    {
        $GLOBALS['WHMCS_STUB_HOOKS'][$name][] = $callback;
    }

    /** Runs a hook point as WHMCS does: every callback with $vars; their answers in a list. */
    function whmcs_stub_run_hook(string $name, $vars): array
    {
        $answers = [];
        foreach ($GLOBALS['WHMCS_STUB_HOOKS'][$name] ?? [] as $callback) {
            $answers[] = $callback($vars);
        }
        return $answers;
    }

    /** WHMCS's Menu facade: the sidebar's context (the service and client of the page). */
    class Menu
    {
        public static array $context = [];

        public static function context($name)
        {
            $value = self::$context[$name] ?? null;
            return is_array($value) ? (object) $value : $value;
        }
    }

    /** What $params['model'] is: an Eloquent model (unknown attributes read as null). */
    class WhmcsStubModel
    {
        private array $attributes;

        public function __construct(array $attributes)
        {
            $this->attributes = $attributes;
        }

        public function __get($name)
        {
            return $this->attributes[$name] ?? null;
        }

        public function __isset($name)
        {
            return isset($this->attributes[$name]);
        }
    }

    /** A Carbon-like date attribute. */
    class WhmcsStubCarbon extends \DateTimeImmutable
    {
    }
}

namespace WHMCS\Module {
    class Server
    {
        private ?array $params = null;

        public function loadByServiceID($serviceId): bool
        {
            $this->params = whmcs_stub_service_params((int) $serviceId);
            return $this->params !== null;
        }

        public function buildParams(): array
        {
            return $this->params ?? [];
        }
    }
}

namespace WHMCS\View\Menu {
    class Item
    {
        public string $name;
        public array $attributes;
        /** @var array<string, Item> */
        public array $children = [];

        public function __construct(string $name, array $attributes = [])
        {
            $this->name = $name;
            $this->attributes = $attributes;
        }

        public function getChild($name): ?Item
        {
            return $this->children[$name] ?? null;
        }

        public function addChild($name, array $attributes = []): Item
        {
            return $this->children[$name] = new Item((string) $name, $attributes);
        }

        public function toArray(): array
        {
            return ['name' => $this->name, 'attributes' => $this->attributes,
                'children' => array_map(static fn (Item $c) => $c->toArray(), array_values($this->children))];
        }
    }
}

namespace WHMCS\UsageBilling\Contracts\Metrics {
    interface MetricInterface
    {
        public const TYPE_SNAPSHOT = 'snapshot';
        public const TYPE_PERIOD_DAY = 'day';
        public const TYPE_PERIOD_MONTH = 'month';
    }

    interface ProviderInterface
    {
        public function metrics();

        public function usage();

        public function tenantUsage($tenant);
    }

    interface UsageInterface
    {
    }
}

namespace WHMCS\UsageBilling\Contracts\Metrics\Units {
    interface UnitInterface
    {
    }
}

namespace WHMCS\UsageBilling\Metrics\Units {
    class WholeNumber implements \WHMCS\UsageBilling\Contracts\Metrics\Units\UnitInterface
    {
        public array $args;

        public function __construct($name = null, $single = null, $plural = null, $prefix = null, $suffix = null)
        {
            $this->args = ['class' => static::class, 'name' => $name, 'single' => $single, 'plural' => $plural];
        }
    }

    class Accounts extends WholeNumber
    {
        public function __construct($name = 'Accounts', $single = 'Account', $plural = 'Accounts', $prefix = null,
                                    $suffix = '')
        {
            parent::__construct($name, $single, $plural, $prefix, $suffix);
        }
    }

    class MegaBytes extends WholeNumber
    {
        public function __construct($name = 'Megabytes', $single = null, $plural = null, $prefix = null, $suffix = 'MB')
        {
            parent::__construct($name, $single, $plural, $prefix, $suffix);
        }
    }
}

namespace WHMCS\UsageBilling\Metrics {
    use WHMCS\UsageBilling\Contracts\Metrics\MetricInterface;
    use WHMCS\UsageBilling\Contracts\Metrics\Units\UnitInterface;
    use WHMCS\UsageBilling\Contracts\Metrics\UsageInterface;

    class Usage implements UsageInterface
    {
        public float $value;
        public $collectedAt;

        public function __construct($value, $collectedAt = null, $startAt = null, $endAt = null)
        {
            $this->value = (float) $value;
            $this->collectedAt = $collectedAt;
        }
    }

    class Metric implements MetricInterface
    {
        private $systemName, $displayName, $type, $units, $usage;

        public function __construct($systemName, $displayName = null, $type = null, UnitInterface $units = null,
                                    UsageInterface $usage = null)
        {
            [$this->systemName, $this->displayName, $this->type, $this->units, $this->usage]
                = [$systemName, $displayName ?? $systemName, $type ?? self::TYPE_SNAPSHOT, $units, $usage];
        }

        public function withUsage(UsageInterface $usage = null)
        {
            return new static($this->systemName, $this->displayName, $this->type, $this->units, $usage);
        }

        public function systemName()
        {
            return $this->systemName;
        }

        public function toArray(): array
        {
            return ['system_name' => $this->systemName, 'display_name' => $this->displayName, 'type' => $this->type,
                'units' => $this->units ? $this->units->args : null,
                'usage' => $this->usage ? ['value' => $this->usage->value, 'collected_at' => $this->usage->collectedAt]
                    : null];
        }
    }
}

namespace WHMCS\Service {
    class Status
    {
        public const PENDING = 'Pending';
        public const ACTIVE = 'Active';
        public const SUSPENDED = 'Suspended';
        public const TERMINATED = 'Terminated';
        public const CANCELLED = 'Cancelled';
        public const FRAUD = 'Fraud';
        public const COMPLETED = 'Completed';
    }
}

namespace WHMCS\Database {
    final class StubDb
    {
        public static function load(): array
        {
            $file = $GLOBALS['WHMCS_STUB']['db_file'];
            $data = is_file($file) ? json_decode((string) file_get_contents($file), true) : null;
            return is_array($data) ? $data + ['tables' => [], 'schema' => [], 'writes' => [], 'primary' => []]
                : ['tables' => [], 'schema' => [], 'writes' => [], 'primary' => []];
        }

        /**
         * One read-modify-write under an exclusive lock (db_file.lock): the test, module calls
         * and the callback receiver change the same file concurrently.
         */
        public static function mutate(callable $change)
        {
            $lock = fopen($GLOBALS['WHMCS_STUB']['db_file'] . '.lock', 'c');
            flock($lock, LOCK_EX);
            try {
                $data = self::load();
                $result = $change($data);
                self::save($data);
                return $result;
            } finally {
                flock($lock, LOCK_UN);
                fclose($lock);
            }
        }

        public static function save(array $data): void
        {
            // Written whole and renamed into place: the test and the callback receiver read it too.
            $file = $GLOBALS['WHMCS_STUB']['db_file'];
            $temporary = $file . '.' . getmypid() . '.tmp';
            file_put_contents($temporary,
                json_encode($data, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE));
            rename($temporary, $file);
        }
    }

    final class StubQuery
    {
        private string $table;
        private array $wheres = [];

        public function __construct(string $table)
        {
            $this->table = $table;
        }

        public function where($column, $operator = null, $value = null): self
        {
            if (func_num_args() === 2) {
                [$operator, $value] = ['=', $operator];
            }
            if ($operator !== '=') {
                throw new \LogicException("stub Capsule: only '=' is supported");
            }
            $query = clone $this;
            $query->wheres[] = [(string) $column, $value];
            return $query;
        }

        private function matches(array $row): bool
        {
            foreach ($this->wheres as [$column, $value]) {
                if (!array_key_exists($column, $row) || (string) $row[$column] !== (string) $value) {
                    return false;
                }
            }
            return true;
        }

        public function get(): array
        {
            $data = StubDb::load();
            $rows = [];
            foreach ($data['tables'][$this->table] ?? [] as $row) {
                if ($this->matches($row)) {
                    $rows[] = (object) $row;
                }
            }
            return $rows;
        }

        public function first(): ?object
        {
            return $this->get()[0] ?? null;
        }

        public function insert(array $values): bool
        {
            $rows = isset($values[0]) && is_array($values[0]) ? $values : [$values];
            return StubDb::mutate(function (array &$data) use ($rows) {
                $key = $data['primary'][$this->table] ?? null;
                foreach ($rows as $row) {
                    if ($key !== null) {
                        foreach ($data['tables'][$this->table] ?? [] as $existing) {
                            if (isset($row[$key]) && (string) ($existing[$key] ?? '') === (string) $row[$key]) {
                                throw new \RuntimeException("SQLSTATE[23000]: Integrity constraint violation: 1062 "
                                    . "Duplicate entry '{$row[$key]}' for key 'PRIMARY'");
                            }
                        }
                    }
                    $data['tables'][$this->table][] = $row;
                }
                $data['writes'][] = ['table' => $this->table, 'op' => 'insert', 'values' => $rows];
                return true;
            });
        }

        public function insertGetId(array $values): int
        {
            return StubDb::mutate(function (array &$data) use ($values) {
                $id = 1;
                foreach ($data['tables'][$this->table] ?? [] as $row) {
                    $id = max($id, (int) ($row['id'] ?? 0) + 1);
                }
                $data['tables'][$this->table][] = ['id' => $id] + $values;
                $data['writes'][] = ['table' => $this->table, 'op' => 'insert', 'values' => [['id' => $id] + $values]];
                return $id;
            });
        }

        public function update(array $values): int
        {
            return StubDb::mutate(function (array &$data) use ($values) {
                $count = 0;
                foreach ($data['tables'][$this->table] ?? [] as $i => $row) {
                    if ($this->matches($row)) {
                        $data['tables'][$this->table][$i] = array_merge($row, $values);
                        $count++;
                    }
                }
                $data['writes'][] = ['table' => $this->table, 'op' => 'update', 'where' => $this->wheres,
                    'values' => $values, 'affected' => $count];
                return $count;
            });
        }

        public function delete(): int
        {
            return StubDb::mutate(function (array &$data) {
                $kept = [];
                $count = 0;
                foreach ($data['tables'][$this->table] ?? [] as $row) {
                    if ($this->matches($row)) {
                        $count++;
                    } else {
                        $kept[] = $row;
                    }
                }
                $data['tables'][$this->table] = $kept;
                $data['writes'][] = ['table' => $this->table, 'op' => 'delete', 'where' => $this->wheres,
                    'affected' => $count];
                return $count;
            });
        }
    }

    final class StubBlueprint
    {
        public array $columns = [];
        public ?string $primary = null;

        public function __call($name, $arguments)
        {
            if ($name === 'primary' && !$arguments && $this->columns) {
                $this->primary = $this->columns[count($this->columns) - 1][1];
            } elseif ($name === 'increments' && isset($arguments[0])) {
                $this->primary = (string) $arguments[0];
            }
            if (isset($arguments[0]) && is_string($arguments[0])) {
                $this->columns[] = [$name, $arguments[0]];
            }
            return $this;
        }
    }

    final class StubSchema
    {
        public function hasTable(string $table): bool
        {
            // "stale_schema" (set by a test): a table another request made just after this
            // one looked, so this look misses it, once (two requests' first use after an upgrade).
            if (in_array($table, StubDb::load()['stale_schema'] ?? [], true)) {
                $missed = StubDb::mutate(static function (array &$data) use ($table): bool {
                    $stale = $data['stale_schema'] ?? [];
                    $data['stale_schema'] = array_values(array_diff($stale, [$table]));
                    return in_array($table, $stale, true);
                });
                if ($missed) {
                    return false;
                }
            }
            return in_array($table, StubDb::load()['schema'], true);
        }

        public function create(string $table, callable $define): void
        {
            $blueprint = new StubBlueprint();
            $define($blueprint);
            StubDb::mutate(static function (array &$data) use ($table, $blueprint) {
                if (in_array($table, $data['schema'], true)) {
                    throw new \RuntimeException("Base table or view already exists: $table");
                }
                $data['schema'][] = $table;
                $data['tables'][$table] = $data['tables'][$table] ?? [];
                if ($blueprint->primary !== null) {
                    $data['primary'][$table] = $blueprint->primary;
                }
                $data['writes'][] = ['table' => $table, 'op' => 'create', 'columns' => $blueprint->columns];
            });
        }
    }

    class Capsule
    {
        public static function table(string $table): StubQuery
        {
            return new StubQuery($table);
        }

        public static function schema(): StubSchema
        {
            return new StubSchema();
        }
    }
}
