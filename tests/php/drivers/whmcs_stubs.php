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
 *                   $WHMCS_STUB['localapi'] says ("success", "error"; "missing": not defined)
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
            return ['result' => 'success', 'serviceid' => $values['serviceid'] ?? null];
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
            return is_array($data) ? $data + ['tables' => [], 'schema' => [], 'writes' => []]
                : ['tables' => [], 'schema' => [], 'writes' => []];
        }

        public static function save(array $data): void
        {
            file_put_contents($GLOBALS['WHMCS_STUB']['db_file'],
                json_encode($data, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), LOCK_EX);
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
            $data = StubDb::load();
            $rows = isset($values[0]) && is_array($values[0]) ? $values : [$values];
            foreach ($rows as $row) {
                $data['tables'][$this->table][] = $row;
            }
            $data['writes'][] = ['table' => $this->table, 'op' => 'insert', 'values' => $rows];
            StubDb::save($data);
            return true;
        }

        public function update(array $values): int
        {
            $data = StubDb::load();
            $count = 0;
            foreach ($data['tables'][$this->table] ?? [] as $i => $row) {
                if ($this->matches($row)) {
                    $data['tables'][$this->table][$i] = array_merge($row, $values);
                    $count++;
                }
            }
            $data['writes'][] = ['table' => $this->table, 'op' => 'update', 'where' => $this->wheres,
                'values' => $values, 'affected' => $count];
            StubDb::save($data);
            return $count;
        }

        public function delete(): int
        {
            $data = StubDb::load();
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
            StubDb::save($data);
            return $count;
        }
    }

    final class StubBlueprint
    {
        public array $columns = [];

        public function __call($name, $arguments)
        {
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
            return in_array($table, StubDb::load()['schema'], true);
        }

        public function create(string $table, callable $define): void
        {
            $blueprint = new StubBlueprint();
            $define($blueprint);
            $data = StubDb::load();
            if (in_array($table, $data['schema'], true)) {
                throw new \RuntimeException("Base table or view already exists: $table");
            }
            $data['schema'][] = $table;
            $data['tables'][$table] = $data['tables'][$table] ?? [];
            $data['writes'][] = ['table' => $table, 'op' => 'create', 'columns' => $blueprint->columns];
            StubDb::save($data);
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
