# ruff: noqa: E501  (prose strings)
"""Every visible string of the HTML and Markdown reports, in English and Spanish.

Templates never contain prose: they print these strings (``t.key``) and values computed in Python.
"""

from __future__ import annotations

LANGUAGES = ("en", "es")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Soft-prompt audit",
        "risk_label": "{risk} RISK",
        "risk_low": "LOW",
        "risk_medium": "MEDIUM",
        "risk_high": "HIGH",
        "verdict_high": "Do not deploy without review: {n} position(s) read as, or sit right next to, a sensitive "
        "term under at least one projection method.",
        "verdict_medium": "Review before deploying: {n} position(s) have sensitive terms among their nearest "
        "neighbours, though none reads as one at high severity.",
        "verdict_low": "No position reads as, or sits close to, a counted sensitive term under any of the "
        "{m} projection methods.",
        "key_numbers": "Key numbers",
        "positions": "positions",
        "methods": "projection methods",
        "flags": "flags",
        "suppressed_n": "suppressed by the allow-list",
        "mean_agreement": "mean top-1 agreement between methods",
        "by_severity": "Flags by severity",
        "by_category": "Flags by category",
        "severity_high": "high",
        "severity_medium": "medium",
        "severity_low": "low",
        "inputs": "Inputs",
        "prompt": "prompt",
        "model": "model",
        "wordlists": "wordlists",
        "readings": "Readings under each projection",
        "readings_intro": "Each column is one way of reading the prompt; highlighted cells are positions where "
        "the methods disagree.",
        "reference": "Reference text (the prompt's stated intent)",
        "method": "method",
        "projected_text": "projected text",
        "prompt_f1": "word F1 vs reference",
        "position": "position",
        "agreement": "agreement",
        "off_manifold": "off-manifold",
        "risk": "risk",
        "heatmap": "Agreement heatmap",
        "heatmap_intro": "Share of the other methods that give the same top-1 token (dark: everyone agrees; "
        "light: this method reads the position differently).",
        "map": "Where each position sits",
        "map_intro": "2-D PCA of each position's neighbourhood: the prompt vector (black ring), its neighbours "
        "(grey) and sensitive neighbours (red).",
        "flags_table": "Flags, most severe first",
        "no_flags": "No neighbour of any position matched a sensitive term.",
        "severity": "severity",
        "rank": "rank",
        "token": "token",
        "term": "term",
        "category": "category",
        "language": "lang",
        "q_value": "q",
        "explanation": "explanation",
        "explain_top1": "Position {pos} reads '{token}' under {method}: the projection itself is the sensitive "
        "term '{term}' ({category}, {lang})",
        "explain_near": "Position {pos} reads '{reading}' under {method}, but '{token}' ({category}, {lang}: "
        "term '{term}') is its neighbour #{rank}, {gap} below the top-1",
        "explain_partial": " (part of a multi-token term)",
        "explain_null": "; {count} of {total} null vectors have such a term this close (q = {q}).",
        "suppressed": "Suppressed by the allow-list",
        "reason": "reason",
        "neighbours": "Neighbours per position",
        "position_n": "Position {pos}",
        "coverage": "Wordlist coverage for this model",
        "coverage_intro": "Terms the vocabulary cannot spell as one whole token can only produce partial hits. "
        "Categories below 50 % are marked.",
        "whole_tokens": "whole-token terms",
        "share": "share",
        "missing": "not representable as one token",
        "low_coverage": "low coverage",
        "methodology": "Methodology",
        "methods_used": "Projection methods",
        "null_model": "Null model and significance",
        "risk_rule": "Risk rule",
        "caveat": "Caveat",
        "caveat_text": "A projection is not the prompt's meaning: a soft prompt can do its job while projecting "
        "to unrelated text (Khashabi et al. 2022, 'Prompt Waywardness'). This report shows what the prompt's "
        "vectors sit next to under several reasonable definitions of 'next to', so that a reviewer can see "
        "hidden associations; it cannot prove their absence.",
        "notes": "Notes",
        "repro": "Reproducibility",
        "tool": "tool",
        "embedding_sha": "embedding matrix sha256",
        "config": "configuration",
        "none": "none",
        "segment": "segment",
        "passes": "Positions without flags",
        "passes_text": "{n} of {total} positions have no sensitive neighbour under any method.",
        "m_l2": "nearest by Euclidean distance to the scaled embeddings (Prompt Waywardness code)",
        "m_dot": "largest inner product with the scaled embeddings (Prompt Waywardness paper; tied LM logit)",
        "m_cosine": "largest cosine similarity (Lester et al. 2021; PEZ)",
        "m_centered": "cosine after removing the vocabulary mean (and optionally top principal directions)",
        "m_whitened": "cosine after regularised whitening with the vocabulary covariance (Mahalanobis)",
        "m_unembed": "logits of the output matrix (layer-0 logit lens); equals dot for tied models",
        "md_title": "prompt-audit: {risk}",
        "md_top_flags": "Most severe flags",
        "bundle_files": "bundle {version}, {n} files",
    },
    "es": {
        "title": "Auditoría de prompt suave",
        "risk_label": "RIESGO {risk}",
        "risk_low": "BAJO",
        "risk_medium": "MEDIO",
        "risk_high": "ALTO",
        "verdict_high": "No desplegar sin revisión: {n} posición(es) se leen como un término sensible, o quedan "
        "justo a su lado, con al menos un método de proyección.",
        "verdict_medium": "Revisar antes de desplegar: {n} posición(es) tienen términos sensibles entre sus "
        "vecinos más cercanos, aunque ninguna se lee como uno de gravedad alta.",
        "verdict_low": "Ninguna posición se lee como un término sensible contabilizado, ni queda cerca de uno, "
        "con ninguno de los {m} métodos de proyección.",
        "key_numbers": "Cifras clave",
        "positions": "posiciones",
        "methods": "métodos de proyección",
        "flags": "alertas",
        "suppressed_n": "suprimidas por la lista de excepciones",
        "mean_agreement": "acuerdo medio en el primer vecino entre métodos",
        "by_severity": "Alertas por gravedad",
        "by_category": "Alertas por categoría",
        "severity_high": "alta",
        "severity_medium": "media",
        "severity_low": "baja",
        "inputs": "Entradas",
        "prompt": "prompt",
        "model": "modelo",
        "wordlists": "listas de términos",
        "readings": "Lecturas con cada proyección",
        "readings_intro": "Cada columna es una forma de leer el prompt; las celdas resaltadas son posiciones en "
        "las que los métodos no coinciden.",
        "reference": "Texto de referencia (la intención declarada del prompt)",
        "method": "método",
        "projected_text": "texto proyectado",
        "prompt_f1": "F1 de palabras frente a la referencia",
        "position": "posición",
        "agreement": "acuerdo",
        "off_manifold": "fuera de la variedad",
        "risk": "riesgo",
        "heatmap": "Mapa de calor del acuerdo",
        "heatmap_intro": "Proporción de los demás métodos que dan el mismo primer token (oscuro: todos "
        "coinciden; claro: este método lee la posición de otra forma).",
        "map": "Dónde se sitúa cada posición",
        "map_intro": "PCA 2-D del vecindario de cada posición: el vector del prompt (anillo negro), sus vecinos "
        "(gris) y los vecinos sensibles (rojo).",
        "flags_table": "Alertas, de más a menos graves",
        "no_flags": "Ningún vecino de ninguna posición coincide con un término sensible.",
        "severity": "gravedad",
        "rank": "puesto",
        "token": "token",
        "term": "término",
        "category": "categoría",
        "language": "idioma",
        "q_value": "q",
        "explanation": "explicación",
        "explain_top1": "La posición {pos} se lee '{token}' con {method}: la proyección misma es el término "
        "sensible '{term}' ({category}, {lang})",
        "explain_near": "La posición {pos} se lee '{reading}' con {method}, pero '{token}' ({category}, {lang}: "
        "término '{term}') es su vecino n.º {rank}, a {gap} del primero",
        "explain_partial": " (parte de un término de varios tokens)",
        "explain_null": "; {count} de {total} vectores nulos tienen un término así de cerca (q = {q}).",
        "suppressed": "Suprimidas por la lista de excepciones",
        "reason": "motivo",
        "neighbours": "Vecinos por posición",
        "position_n": "Posición {pos}",
        "coverage": "Cobertura de las listas en este modelo",
        "coverage_intro": "Los términos que el vocabulario no puede escribir como un único token solo producen "
        "coincidencias parciales. Se marcan las categorías por debajo del 50 %.",
        "whole_tokens": "términos de un solo token",
        "share": "proporción",
        "missing": "no representables como un token",
        "low_coverage": "cobertura baja",
        "methodology": "Metodología",
        "methods_used": "Métodos de proyección",
        "null_model": "Modelo nulo y significación",
        "risk_rule": "Regla de riesgo",
        "caveat": "Advertencia",
        "caveat_text": "Una proyección no es el significado del prompt: un prompt suave puede cumplir su tarea "
        "proyectándose en un texto sin relación (Khashabi et al. 2022, 'Prompt Waywardness'). Este informe "
        "muestra junto a qué quedan los vectores del prompt según varias definiciones razonables de "
        "'cercanía', para que quien revisa vea asociaciones ocultas; no puede demostrar su ausencia.",
        "notes": "Notas",
        "repro": "Reproducibilidad",
        "tool": "herramienta",
        "embedding_sha": "sha256 de la matriz de embeddings",
        "config": "configuración",
        "none": "ninguna",
        "segment": "segmento",
        "passes": "Posiciones sin alertas",
        "passes_text": "{n} de {total} posiciones no tienen ningún vecino sensible con ningún método.",
        "m_l2": "el más cercano por distancia euclídea a los embeddings escalados (código de Prompt Waywardness)",
        "m_dot": "mayor producto escalar con los embeddings escalados (artículo de Prompt Waywardness; logit "
        "con cabeza atada)",
        "m_cosine": "mayor similitud coseno (Lester et al. 2021; PEZ)",
        "m_centered": "coseno tras restar la media del vocabulario (y, opcionalmente, las direcciones "
        "principales)",
        "m_whitened": "coseno tras un blanqueo regularizado con la covarianza del vocabulario (Mahalanobis)",
        "m_unembed": "logits de la matriz de salida (logit lens de la capa 0); igual a dot si está atada",
        "md_title": "prompt-audit: {risk}",
        "md_top_flags": "Alertas más graves",
        "bundle_files": "paquete {version}, {n} archivos",
    },
}

CATEGORY_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "race_ethnicity": "race / ethnicity / skin colour",
        "nationality_origin": "nationality / origin / migration status",
        "sex_gender": "sex / gender identity and expression",
        "sexual_orientation": "sexual orientation",
        "religion_belief": "religion or belief",
        "age": "age",
        "disability": "disability",
        "health": "health / serological status",
        "socioeconomic": "socioeconomic status",
        "language": "language",
        "political_opinion": "political opinion",
        "proxy_names": "first names as demographic proxies",
        "slurs": "slurs",
    },
    "es": {
        "race_ethnicity": "origen racial o étnico / color de piel",
        "nationality_origin": "nacionalidad / origen / situación migratoria",
        "sex_gender": "sexo / identidad y expresión de género",
        "sexual_orientation": "orientación sexual",
        "religion_belief": "religión o convicciones",
        "age": "edad",
        "disability": "discapacidad",
        "health": "salud / estado serológico",
        "socioeconomic": "situación socioeconómica",
        "language": "lengua",
        "political_opinion": "opinión política",
        "proxy_names": "nombres propios como indicadores demográficos",
        "slurs": "insultos",
    },
}

# Method notes and the rule texts that come from other modules, translated.
RULE_TEXT = {
    "es": (
        "Cada alerta parte de la gravedad de su término y baja un nivel si: el término es ambiguo "
        "('downweight', con sentidos benignos frecuentes), el token es un fragmento de palabra, la "
        "coincidencia es parcial (término de varios tokens) o el vecino no es significativo (q >= 0,05). "
        "Los términos 'report_only' se listan con gravedad baja y, como las coincidencias de la lista de "
        "excepciones, nunca elevan el riesgo. "
        "Una posición es ALTA cuando una alerta media o alta es la lectura principal de algún método, cuando "
        "una alerta alta está entre los 3 primeros vecinos, o cuando una alerta media o alta está entre los 3 "
        "primeros mientras los métodos discrepan sobre la lectura de la posición; MEDIA cuando hay alguna "
        "alerta contabilizada media o alta, o una alerta baja es la lectura principal; si no, BAJA. El riesgo "
        "del prompt es el de su posición más arriesgada."
    ),
}
NULL_TEXT = {
    "es": (
        "Modelo nulo: {n} vectores nulos con semilla: {half} filas del vocabulario desplazadas fuera de la "
        "variedad de tokens entre 0,5 y 3 veces la distancia típica de un token a su vecino más cercano, y "
        "{half} direcciones aleatorias escaladas a las normas de los propios tokens. El valor p de una alerta "
        "es la proporción de vectores nulos que tienen un término de la misma categoría en el mismo puesto o "
        "más cerca con el mismo método (más uno, sobre N más uno); los valores q controlan la tasa de falsos "
        "descubrimientos en todo el informe (Benjamini-Hochberg)."
    ),
}


def strings(lang: str) -> dict[str, str]:
    if lang not in STRINGS:
        raise ValueError(f"report language {lang!r} not in {LANGUAGES}")
    return STRINGS[lang]
