//! The values that cross the store's boundary, the same for SQLite and
//! PostgreSQL: integers, text and NULL. Every integer column is 64-bit in
//! both schemas, so one integer type covers them all.

use super::DbError;

/// A parameter or a column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i64, i32, u32, u16, bool);

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        // Counts and clock ticks; none comes near 2^63.
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Query parameters, `$1` first: `params![id, name]`.
#[macro_export]
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$($crate::db::Value::from($p)),*] as &[$crate::db::Value]
    };
}

/// One result row.
#[derive(Debug)]
pub struct Row(pub(super) Vec<Value>);

impl Row {
    /// Column `index` as `T`; a NULL or a value of another kind is an error
    /// unless `T` is an `Option`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        let value = self
            .0
            .get(index)
            .ok_or_else(|| DbError::Decode(format!("the row has no column {index}")))?;
        T::from_value(value).ok_or_else(|| {
            DbError::Decode(format!(
                "column {index} holds {value:?}, not {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A Rust type a column's value converts to.
pub trait FromValue: Sized {
    /// The value as `Self`, if it is of the right kind.
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for i32 {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|i| i32::try_from(i).ok())
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_convert_by_kind_and_refuse_the_wrong_one() {
        let row = Row(vec![Value::Int(7), Value::Text("x".into()), Value::Null]);
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert_eq!(row.get::<String>(1).unwrap(), "x");
        assert_eq!(row.get::<Option<String>>(2).unwrap(), None);
        assert_eq!(row.get::<Option<i64>>(0).unwrap(), Some(7));
        assert!(row.get::<String>(0).is_err());
        assert!(row.get::<i64>(2).is_err());
        assert!(row.get::<i64>(3).is_err());
    }

    #[test]
    fn parameters_convert_from_rust_values() {
        let p = params![1i64, "a", None::<i64>, Some(3u16), true];
        assert_eq!(
            p,
            [
                Value::Int(1),
                Value::Text("a".into()),
                Value::Null,
                Value::Int(3),
                Value::Int(1)
            ]
        );
    }
}
