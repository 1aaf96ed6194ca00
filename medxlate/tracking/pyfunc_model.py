"""The registered pyfunc model as code (MLflow "models from code").

:func:`medxlate.tracking.registry.register_checkpoint` passes this file's path as ``python_model``:
MLflow copies it into the model and runs it on loading, so no pickled Python object is stored (a
``PythonModel`` instance would be serialised with CloudPickle, which MLflow warns about and which only
loads where pickle deserialisation is allowed).
"""

import mlflow

from medxlate.tracking.registry import TranslatorModel

mlflow.models.set_model(TranslatorModel())
